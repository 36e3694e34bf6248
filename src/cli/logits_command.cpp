#include "cli/commands.h"
#include "formats/safetensors.h"
#include "model/minimax_m2.h"

namespace fourbit {

void add_logits_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        std::string ids;
        std::string out;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command =
        app.add_subcommand("logits", "one prefill of the given ids; writes logits [T, vocab] F32");
    command->add_option("--model", options->model_dir, "checkpoint directory")->required();
    command->add_option("--ids", options->ids, "token ids, e.g. 5,17,3")->required();
    command->add_option("--out", options->out, "output .safetensors file")->required();
    command->callback([options] {
        std::vector<int32_t> ids = parse_token_ids(options->ids, "--ids");
        MiniMaxM2 model(load_model_weights(options->model_dir));
        KvCache cache(model.config());
        SequenceInput input{ids, &cache, true};
        Tensor logits = model.forward(std::span<const SequenceInput>(&input, 1));
        write_safetensors(options->out, std::vector<NamedTensor>{{"logits", logits}});
    });
}

}  // namespace fourbit
