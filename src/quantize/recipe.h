// The calibration recipe: what `fourbit quantize` reads from --recipe FILE.json, overridden by
// the release script's environment variables (read here and nowhere else), overridden in turn
// by command-line flags. recipe.md §3 names the variables; docs/quantize.md documents the file.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "formats/quantization_scheme.h"

namespace fourbit {

struct RecipeDataset {
    std::string path;
    std::string name;                  // report label; default: the file name without extension
    std::optional<int64_t> n_samples;  // default: Recipe::samples_per_dataset
};

struct Recipe {
    std::vector<RecipeDataset> datasets;
    int64_t samples_per_dataset = 128;  // NUM_CALIB_PER_DS
    uint64_t seed = 0;                  // which records of each dataset are drawn
    int64_t max_seq = 49152;            // MAX_SEQ: longer samples are truncated
    int64_t min_tokens = 16;            // shorter samples are dropped and counted
    int64_t checkpoint_every = 50;      // CKPT_EVERY: samples between state checkpoints
    double wallclock_budget_s = 0;      // WALLCLOCK_BUDGET_S: soft stop; 0 = none
    double wallclock_hard_s = 0;        // hard stop (kill); 0 = soft budget x 1.1 + 60 s, or none
    double starved_expert_pct_abort = 1.0;  // STARVED_EXPERT_PCT_ABORT
    int64_t starved_min_tokens = 1;     // an expert routed fewer tokens than this is starved
    double memory_budget_gb = 0;        // per-sample forward memory; 0 = no limit
    int64_t held_out_samples = 4;       // per dataset, for the export's KL smoke test
    bool skip_bad_records = false;      // else a bad record is an error naming file and line
    std::vector<std::string> ignore;    // empty: the GB10 list (lm_head, embeddings, routers,
                                        // first and last layer)
    QuantizationFormat format = QuantizationFormat::nvfp4_compressed_tensors;
    std::string phase = "A";  // PHASE: A calibrate+export, B resume, C export only
    std::string input_dir;    // INPUT_DIR
    std::string output_dir;   // OUTPUT_DIR
    std::vector<std::string> notes;  // what was taken from the environment, for the report
};

// Reads a recipe file; dataset paths are relative to the file. Unknown keys, wrong types and
// out-of-range values are Errors naming the file and the key.
Recipe read_recipe_file(const std::string& path);

// Applies the recipe's environment variables: PHASE, INPUT_DIR, OUTPUT_DIR, NUM_CALIB_PER_DS,
// MAX_SEQ, CKPT_EVERY, WALLCLOCK_BUDGET_S, STARVED_EXPERT_PCT_ABORT. The remote-storage ones
// (TARGET_REPO_ID, BUCKET_REPO_ID, BUCKET_PREFIX) are noted as ignored: fourbit writes local
// files only. A malformed value is an Error naming the variable. `getenv` is injectable for
// tests.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
void apply_recipe_environment(Recipe& recipe, const EnvLookup& getenv);
EnvLookup process_environment();

// Checks ranges after every override.
void validate_recipe(const Recipe& recipe);

QuantizationFormat parse_export_format(const std::string& text, const std::string& where);

}  // namespace fourbit
