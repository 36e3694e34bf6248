#include <cstdio>

#include "cli/commands.h"
#include "model/make_model.h"
#include "text/checkpoint_tokenizer.h"

namespace fourbit {

void add_make_model_command(CLI::App& app) {
    struct Options {
        MakeModelOptions make;
        uint64_t shard_mb = 2000;
        bool dry_run = false;
        std::string quant = "bf16";
        std::string format;
        std::string nvfp4_layers = "seed";
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "make-model", "write a MiniMax-M2-family checkpoint with random weights");
    command->add_option("--preset", options->make.preset, "tiny, small, m2.7-slice or m2.7")
        ->required();
    command->add_option("--out", options->make.out_dir, "output directory");
    command->add_option("--seed", options->make.seed, "random seed")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command->add_option("--layers", options->make.layers,
                        "number of layers (overrides the preset)");
    command->add_option("--shard-size-mb", options->shard_mb, "largest shard, in MB")
        ->capture_default_str();
    command
        ->add_option("--quant", options->quant,
                     "bf16, or nvfp4: every linear module outside the seed ignore list "
                     "(lm_head, embeddings, routers, first and last layer) quantized")
        ->check(CLI::IsMember({"bf16", "nvfp4"}))
        ->capture_default_str();
    command
        ->add_option("--format", options->format,
                     "NVFP4 layout: compressed-tensors (default) or modelopt")
        ->check(CLI::IsMember({"compressed-tensors", "modelopt"}));
    command
        ->add_option("--nvfp4-layers", options->nvfp4_layers,
                     "seed: the first and last layer stay BF16, as the recipe's seed ignore list "
                     "says; all: every layer NVFP4 (only lm_head, embeddings and routers BF16)")
        ->check(CLI::IsMember({"seed", "all"}))
        ->capture_default_str();
    command->add_flag("--dry-run", options->dry_run,
                      "print the tensor inventory and total bytes, write nothing");
    command->callback([options] {
        Options& o = *options;
        o.make.max_shard_bytes = o.shard_mb * 1'000'000;
        o.make.keep_edge_layers_bf16 = o.nvfp4_layers == "seed";
        if (o.quant == "nvfp4") {
            o.make.format = o.format == "modelopt" ? QuantizationFormat::nvfp4_modelopt
                                                   : QuantizationFormat::nvfp4_compressed_tensors;
        } else if (!o.format.empty()) {
            throw CLI::ValidationError("--format", "applies to --quant nvfp4 only");
        }
        if (o.dry_run) {
            MiniMaxM2Config config = preset_config(o.make.preset, o.make.layers);
            uint64_t total = 0;
            for (const TensorPlan& plan :
                 model_tensor_plan(config, o.make.format, o.make.keep_edge_layers_bf16)) {
                uint64_t bytes = shape_numel(plan.shape) * dtype_size_bytes(plan.dtype);
                total += bytes;
                std::printf("%s %s %s %llu\n", plan.name.c_str(),
                            std::string(dtype_name(plan.dtype)).c_str(),
                            shape_text(plan.shape).c_str(), static_cast<unsigned long long>(bytes));
            }
            std::printf("total %llu bytes (%.2f GB)\n", static_cast<unsigned long long>(total),
                        total / 1e9);
            return;
        }
        if (o.make.out_dir.empty()) throw CLI::RequiredError("--out");
        // The tokenizer's turn-start and end-of-turn ids go into the model's configs.
        const int64_t vocab_size = preset_config(o.make.preset, o.make.layers).vocab_size;
        o.make.bos_token_id = checkpoint_bos_token_id(vocab_size);
        o.make.eos_token_ids = {checkpoint_eos_token_id(vocab_size)};
        make_model(o.make);
        write_checkpoint_tokenizer(o.make.out_dir, vocab_size);
    });
}

}  // namespace fourbit
