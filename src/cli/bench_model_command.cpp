// `fourbit bench-model`: the model's prefill and decode speed on a device (bench/model_bench.h),
// from a checkpoint or from synthetic weights of a make-model preset made on the device.
#include <fstream>
#include <limits>

#include "bench/model_bench.h"
#include "cli/commands.h"
#include "cli/device_flags.h"
#include "model/make_model.h"
#include "model/synthetic_weights.h"
#include "util/error.h"

namespace fourbit {

void add_bench_model_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        std::string synthetic;
        std::optional<int64_t> layers;
        std::string format = "nvfp4";
        bool all_layers_nvfp4 = false;
        DeviceFlags device;
        ModelBenchOptions bench;
        std::string output;
    };
    auto o = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "bench-model", "prefill and decode speed of the model itself (llama-bench's pp/tg tests)");
    command->add_option("--model", o->model_dir, "checkpoint directory");
    command->add_option("--synthetic-weights", o->synthetic,
                        "a make-model preset (tiny, small, m2.7-slice, m2.7) with random weights "
                        "made on the device, no files");
    command->add_option("--layers", o->layers, "layers of the synthetic preset");
    command->add_option("--format", o->format, "synthetic weights: nvfp4 or bf16")
        ->check(CLI::IsMember({"nvfp4", "bf16"}))
        ->capture_default_str();
    command->add_flag("--all-layers-nvfp4", o->all_layers_nvfp4,
                      "synthetic NVFP4: the first and last layers too (llama.cpp's slices)");
    add_device_flags(*command, o->device);
    // A test of nothing (a zero-token prompt, no sequences, no steps) would fail later on an
    // empty KV pool: these take 1 and up.
    const CLI::Range at_least_one(int64_t{1}, std::numeric_limits<int64_t>::max());
    command->add_option("-p,--prompt-lengths", o->bench.prompt_lengths, "prefill tests")
        ->delimiter(',')
        ->check(at_least_one);
    command->add_option("-b,--batch-sizes", o->bench.batch_sizes, "decode tests")
        ->delimiter(',')
        ->check(at_least_one);
    command->add_option("-n,--decode-tokens", o->bench.decode_tokens, "steps per decode test")
        ->check(at_least_one)
        ->capture_default_str();
    command->add_option("--context", o->bench.context, "tokens held before decoding")
        ->capture_default_str();
    command->add_option("--prefill-chunk", o->bench.prefill_chunk, "tokens per prefill forward")
        ->capture_default_str();
    command
        ->add_option("-r,--repetitions", o->bench.repetitions,
                     "runs per test after a warm-up (best kept; 0: the warm-up alone, timed)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    CLI::Option* profile_ops =
        command->add_flag("--profile-ops", o->bench.profile_ops,
                          "also time each op (waits after every op: slower, no CUDA graphs)");
    command
        ->add_flag("--trace-kernels", o->bench.trace_kernels,
                   "also list each decode test's kernels as they ran (CUDA, CUPTI; one more "
                   "untimed run)")
        ->excludes(profile_ops);
    command->add_option("--output", o->output, "also write the Markdown table here");
    command->callback([o] {
        if (o->model_dir.empty() == o->synthetic.empty()) {
            fail("give --model or --synthetic-weights, one of them");
        }
        int64_t max_tokens = o->bench.prefill_chunk;
        for (int64_t b : o->bench.batch_sizes) max_tokens = std::max(max_tokens, b);
        ModelWeights weights;
        if (!o->synthetic.empty()) {
            const MiniMaxM2Config config = preset_config(o->synthetic, o->layers);
            const Device device = flags_device(o->device);
            weights = synthetic_weights(config, o->format == "nvfp4", !o->all_layers_nvfp4, device, 1);
        } else {
            LoadOptions load;
            load.device = resolve_device(o->device, o->model_dir, max_tokens, max_tokens);
            weights = load_model_weights(o->model_dir, load);
        }
        const MiniMaxM2 model(std::move(weights));
        o->bench.kv_cache_dtype = flags_kv_cache_dtype(o->device, model.weights().device());
        const ModelBenchResult result = run_model_bench(model, o->bench);
        const std::string table = model_bench_markdown(result);
        std::fputs(table.c_str(), stdout);
        if (!o->output.empty()) {
            std::ofstream out(o->output);
            out << table;
            if (!out) fail("--output {}: cannot write", o->output);
        }
    });
}

}  // namespace fourbit
