// Recipe file parsing and the release script's environment variables.
#include "quantize/recipe.h"

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/model_config.h"
#include "util/error.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t integer(const json& value, const std::string& where, int64_t min) {
    if (!value.is_number_integer() || value.get<int64_t>() < min) {
        fail("{} must be an integer >= {}, not {}", where, min, value.dump());
    }
    return value.get<int64_t>();
}

double number(const json& value, const std::string& where) {
    if (!value.is_number() || value.get<double>() < 0) {
        fail("{} must be a number >= 0, not {}", where, value.dump());
    }
    return value.get<double>();
}

std::string text(const json& value, const std::string& where) {
    if (!value.is_string()) fail("{} must be a string, not {}", where, value.dump());
    return value.get<std::string>();
}

int64_t env_integer(const std::string& value, const char* name, int64_t min) {
    char* end = nullptr;
    errno = 0;
    long long parsed = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || errno != 0 || parsed < min) {
        fail("environment variable {}='{}' must be an integer >= {}", name, value, min);
    }
    return parsed;
}

double env_number(const std::string& value, const char* name) {
    char* end = nullptr;
    double parsed = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(parsed >= 0)) {
        fail("environment variable {}='{}' must be a number >= 0", name, value);
    }
    return parsed;
}

}  // namespace

QuantizationFormat parse_export_format(const std::string& value, const std::string& where) {
    if (value == "compressed-tensors") return QuantizationFormat::nvfp4_compressed_tensors;
    if (value == "modelopt") return QuantizationFormat::nvfp4_modelopt;
    fail("{} must be compressed-tensors or modelopt, not '{}'", where, value);
}

Recipe read_recipe_file(const std::string& path) {
    const json file = read_json_file(path);
    if (!file.is_object()) fail("{}: a recipe is a JSON object", path);
    Recipe recipe;
    const fs::path base = fs::path(path).parent_path();
    auto where = [&path](const std::string& key) { return fmt::format("{}: '{}'", path, key); };
    for (auto it = file.begin(); it != file.end(); ++it) {
        const std::string& key = it.key();
        const json& value = it.value();
        if (key == "datasets") {
            if (!value.is_array()) fail("{} must be a list", where(key));
            for (size_t i = 0; i < value.size(); ++i) {
                const std::string item = where(fmt::format("datasets[{}]", i));
                RecipeDataset dataset;
                if (value[i].is_string()) {
                    dataset.path = value[i].get<std::string>();
                } else if (value[i].is_object() && value[i].contains("path")) {
                    for (auto field = value[i].begin(); field != value[i].end(); ++field) {
                        if (field.key() == "path") {
                            dataset.path = text(*field, item + ".path");
                        } else if (field.key() == "name") {
                            dataset.name = text(*field, item + ".name");
                        } else if (field.key() == "samples") {
                            dataset.n_samples = integer(*field, item + ".samples", 1);
                        } else {
                            fail("{}: unknown key '{}' (path, name, samples)", item, field.key());
                        }
                    }
                } else {
                    fail("{} must be a path or {{\"path\", \"name\", \"samples\"}}", item);
                }
                if (fs::path(dataset.path).is_relative()) dataset.path = (base / dataset.path).string();
                if (dataset.name.empty()) dataset.name = fs::path(dataset.path).stem().string();
                recipe.datasets.push_back(std::move(dataset));
            }
        } else if (key == "samples_per_dataset") {
            recipe.samples_per_dataset = integer(value, where(key), 1);
        } else if (key == "seed") {
            recipe.seed = static_cast<uint64_t>(integer(value, where(key), 0));
        } else if (key == "max_seq") {
            recipe.max_seq = integer(value, where(key), 2);
        } else if (key == "min_tokens") {
            recipe.min_tokens = integer(value, where(key), 1);
        } else if (key == "checkpoint_every") {
            recipe.checkpoint_every = integer(value, where(key), 1);
        } else if (key == "wallclock_budget_s") {
            recipe.wallclock_budget_s = number(value, where(key));
        } else if (key == "wallclock_hard_s") {
            recipe.wallclock_hard_s = number(value, where(key));
        } else if (key == "starved_expert_pct_abort") {
            recipe.starved_expert_pct_abort = number(value, where(key));
        } else if (key == "starved_min_tokens") {
            recipe.starved_min_tokens = integer(value, where(key), 0);
        } else if (key == "memory_budget_gb") {
            recipe.memory_budget_gb = number(value, where(key));
        } else if (key == "held_out_samples") {
            recipe.held_out_samples = integer(value, where(key), 0);
        } else if (key == "skip_bad_records") {
            if (!value.is_boolean()) fail("{} must be true or false", where(key));
            recipe.skip_bad_records = value.get<bool>();
        } else if (key == "ignore") {
            if (!value.is_array()) fail("{} must be a list of module patterns", where(key));
            for (const json& pattern : value) recipe.ignore.push_back(text(pattern, where(key)));
        } else if (key == "format") {
            recipe.format = parse_export_format(text(value, where(key)), where(key));
        } else if (key == "comment" || key == "description") {
            continue;
        } else {
            fail("{}: unknown key '{}'", path, key);
        }
    }
    return recipe;
}

void apply_recipe_environment(Recipe& recipe, const EnvLookup& getenv) {
    auto note = [&recipe](const char* name, const std::string& value) {
        recipe.notes.push_back(fmt::format("{}={} (environment)", name, value));
    };
    if (auto value = getenv("PHASE")) {
        if (*value != "A" && *value != "B" && *value != "C") {
            fail("environment variable PHASE='{}' must be A (calibrate), B (resume) or C "
                 "(export only)",
                 *value);
        }
        recipe.phase = *value;
        note("PHASE", *value);
    }
    if (auto value = getenv("INPUT_DIR")) recipe.input_dir = *value, note("INPUT_DIR", *value);
    if (auto value = getenv("OUTPUT_DIR")) recipe.output_dir = *value, note("OUTPUT_DIR", *value);
    if (auto value = getenv("NUM_CALIB_PER_DS")) {
        recipe.samples_per_dataset = env_integer(*value, "NUM_CALIB_PER_DS", 1);
        for (RecipeDataset& dataset : recipe.datasets) dataset.n_samples.reset();
        note("NUM_CALIB_PER_DS", *value);
    }
    if (auto value = getenv("MAX_SEQ")) {
        recipe.max_seq = env_integer(*value, "MAX_SEQ", 2);
        note("MAX_SEQ", *value);
    }
    if (auto value = getenv("CKPT_EVERY")) {
        recipe.checkpoint_every = env_integer(*value, "CKPT_EVERY", 1);
        note("CKPT_EVERY", *value);
    }
    if (auto value = getenv("WALLCLOCK_BUDGET_S")) {
        recipe.wallclock_budget_s = env_number(*value, "WALLCLOCK_BUDGET_S");
        note("WALLCLOCK_BUDGET_S", *value);
    }
    if (auto value = getenv("STARVED_EXPERT_PCT_ABORT")) {
        recipe.starved_expert_pct_abort = env_number(*value, "STARVED_EXPERT_PCT_ABORT");
        note("STARVED_EXPERT_PCT_ABORT", *value);
    }
    for (const char* name : {"TARGET_REPO_ID", "BUCKET_REPO_ID", "BUCKET_PREFIX"}) {
        if (auto value = getenv(name)) {
            recipe.notes.push_back(
                fmt::format("{} ignored: fourbit writes local files only (copy OUT yourself)",
                            name));
        }
    }
}

EnvLookup process_environment() {
    return [](const char* name) -> std::optional<std::string> {
        const char* value = std::getenv(name);
        if (value == nullptr) return std::nullopt;
        return std::string(value);
    };
}

void validate_recipe(const Recipe& recipe) {
    if (recipe.datasets.empty()) {
        fail("no calibration data: give --dataset FILE or a recipe with 'datasets'");
    }
    if (recipe.min_tokens > recipe.max_seq) {
        fail("min_tokens {} is larger than max_seq {}", recipe.min_tokens, recipe.max_seq);
    }
    std::set<std::string> names;
    for (const RecipeDataset& dataset : recipe.datasets) {
        if (!names.insert(dataset.name).second) {
            fail("two datasets are named '{}' (give each a distinct name)", dataset.name);
        }
    }
}

}  // namespace fourbit
