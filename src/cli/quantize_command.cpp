// `fourbit quantize --model IN --out OUT [--recipe R.json] [--dataset FILE ...] ...`: NVFP4
// post-training quantization with calibration (quantize/quantize_run.h). Settings come from
// the recipe file, then the release script's environment variables, then these flags.
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "quantize/quantize_run.h"
#include "util/error.h"

namespace fourbit {

void add_quantize_command(CLI::App& app) {
    struct Options {
        std::string model_dir, out_dir, recipe_path, format;
        std::vector<std::string> datasets, ignore;
        bool resume = false, export_only = false, skip_bad_records = false;
        std::optional<double> memory_budget_gb, wallclock_budget_s, wallclock_hard_s;
        std::optional<int64_t> samples_per_dataset, checkpoint_every, held_out_samples;
        int64_t kill_after_checkpoints = 0;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "quantize", "NVFP4 post-training quantization of a BF16 or FP8 checkpoint, calibrated");
    command->add_option("--model", options->model_dir,
                        "source checkpoint (BF16 or MiniMax FP8); or INPUT_DIR");
    command->add_option("--out", options->out_dir, "output directory; or OUTPUT_DIR");
    command->add_option("--recipe", options->recipe_path, "recipe JSON (docs/quantize.md)");
    command->add_option("--dataset", options->datasets,
                        "calibration data file (JSONL or JSON); may repeat");
    command->add_option("--ignore", options->ignore,
                        "module pattern kept unquantized (replaces the default list); may repeat");
    command->add_option("--format", options->format, "compressed-tensors (default) or modelopt")
        ->check(CLI::IsMember({"compressed-tensors", "modelopt"}));
    command->add_flag("--resume", options->resume,
                      "continue from the newest checkpoint in OUT/calibration (PHASE=B)");
    command->add_flag("--export-only", options->export_only,
                      "export from the newest checkpoint without calibrating (PHASE=C)");
    command->add_flag("--skip-bad-records", options->skip_bad_records,
                      "skip and count malformed records instead of failing");
    command->add_option("--memory-budget-gb", options->memory_budget_gb,
                        "defer samples whose forward needs more (0: no limit)");
    command->add_option("--wallclock-budget-s", options->wallclock_budget_s,
                        "soft stop: checkpoint and exit cleanly after this long");
    command->add_option("--wallclock-hard-s", options->wallclock_hard_s,
                        "hard stop: end the process after this long");
    command->add_option("--samples-per-dataset", options->samples_per_dataset,
                        "samples drawn from each dataset");
    command->add_option("--checkpoint-every", options->checkpoint_every,
                        "samples between checkpoints");
    command->add_option("--held-out-samples", options->held_out_samples,
                        "samples per dataset kept out of calibration for the KL smoke test");
    // Tests only: SIGKILL right after the Nth checkpoint, to prove resume is exact.
    command->add_option("--test-kill-after-checkpoints", options->kill_after_checkpoints)
        ->group("");
    command->callback([options] {
        QuantizeOptions run;
        Recipe& recipe = run.recipe;
        if (!options->recipe_path.empty()) recipe = read_recipe_file(options->recipe_path);
        apply_recipe_environment(recipe, process_environment());
        for (const std::string& path : options->datasets) {
            recipe.datasets.push_back(
                {path, std::filesystem::path(path).stem().string(), std::nullopt});
        }
        if (!options->ignore.empty()) recipe.ignore = options->ignore;
        if (!options->format.empty()) recipe.format = parse_export_format(options->format, "--format");
        if (options->skip_bad_records) recipe.skip_bad_records = true;
        if (options->memory_budget_gb) recipe.memory_budget_gb = *options->memory_budget_gb;
        if (options->wallclock_budget_s) recipe.wallclock_budget_s = *options->wallclock_budget_s;
        if (options->wallclock_hard_s) recipe.wallclock_hard_s = *options->wallclock_hard_s;
        if (options->samples_per_dataset) {
            recipe.samples_per_dataset = *options->samples_per_dataset;
            for (RecipeDataset& dataset : recipe.datasets) dataset.n_samples.reset();
        }
        if (options->checkpoint_every) recipe.checkpoint_every = *options->checkpoint_every;
        if (options->held_out_samples) recipe.held_out_samples = *options->held_out_samples;
        run.model_dir = options->model_dir.empty() ? recipe.input_dir : options->model_dir;
        run.out_dir = options->out_dir.empty() ? recipe.output_dir : options->out_dir;
        if (run.model_dir.empty()) fail("--model (or INPUT_DIR) is required");
        if (run.out_dir.empty()) fail("--out (or OUTPUT_DIR) is required");
        run.resume = options->resume || recipe.phase == "B";
        run.export_only = options->export_only || recipe.phase == "C";
        if (run.resume && run.export_only) fail("--resume and --export-only exclude each other");
        run.kill_after_checkpoints = options->kill_after_checkpoints;
        const int code = run_quantize(run);
        if (code != 0) std::exit(code);
    });
}

}  // namespace fourbit
