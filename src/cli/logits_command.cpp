#include "cli/commands.h"
#include "formats/safetensors.h"
#include "model/minimax_m2.h"
#include "model/sequence_cache.h"

namespace fourbit {

void add_logits_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        std::string ids;
        std::string out;
        LoadOptions load;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command =
        app.add_subcommand("logits", "one prefill of the given ids; writes logits [T, vocab] F32");
    command->add_option("--model", options->model_dir, "checkpoint directory")->required();
    command->add_option("--ids", options->ids, "token ids, e.g. 5,17,3")->required();
    command->add_option("--out", options->out, "output .safetensors file")->required();
    command->add_flag("--emulate-w4a4", options->load.emulate_w4a4,
                      "NVFP4 modules with input scales quantize their activations as W4A4 "
                      "hardware would");
    command->callback([options] {
        std::vector<int32_t> ids = parse_token_ids(options->ids, "--ids");
        MiniMaxM2 model(load_model_weights(options->model_dir, options->load));
        SequenceCache cache(model, static_cast<int64_t>(ids.size()));
        Tensor logits = cache.forward(model, ids, LogitRows::all);
        write_safetensors(options->out, std::vector<NamedTensor>{{"logits", logits}});
    });
}

}  // namespace fourbit
