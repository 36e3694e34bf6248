// `fourbit eval --model Q [--reference R] --data FILE ...`: perplexity, mean KL divergence and
// top-1 agreement per dataset (quantize/evaluate.h); a table, or JSON with --output json.
#include <cstdio>

#include "cli/commands.h"
#include "formats/model_config.h"
#include "quantize/evaluate.h"

namespace fourbit {

void add_eval_command(CLI::App& app) {
    struct Options {
        EvalRequest request;
        std::string output = "table";
        std::string json_path;
        bool weight_only = false;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "eval", "perplexity, KL divergence and top-1 agreement against a reference model");
    command->add_option("--model", options->request.model_dir, "checkpoint to evaluate")
        ->required();
    command->add_option("--reference", options->request.reference_dir,
                        "reference checkpoint (same vocabulary) for KL and top-1");
    command->add_option("--data", options->request.data_files,
                        "data file (JSONL or JSON, the calibration layouts); may repeat")
        ->required();
    command->add_option("--max-samples", options->request.max_samples, "samples per file")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    command->add_option("--max-tokens", options->request.max_tokens, "tokens per sample")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
    command->add_flag("--weight-only", options->weight_only,
                      "keep activations in f32 (W4A16) instead of emulating W4A4");
    command->add_flag("--skip-bad-records", options->request.skip_bad_records,
                      "skip malformed records instead of failing");
    command->add_option("--output", options->output, "table or json")
        ->check(CLI::IsMember({"table", "json"}));
    command->add_option("--json", options->json_path, "also write the JSON to this file");
    command->callback([options] {
        options->request.emulate_w4a4 = !options->weight_only;
        const EvalResult result = evaluate_models(options->request);
        const nlohmann::json json = eval_result_json(options->request, result);
        if (!options->json_path.empty()) write_json_file(options->json_path, json);
        if (options->output == "json") {
            std::printf("%s\n", json.dump(2).c_str());
        } else {
            std::printf("%s", eval_result_table(result).c_str());
        }
    });
}

}  // namespace fourbit
