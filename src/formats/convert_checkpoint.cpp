#include "formats/convert_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/checkpoint.h"
#include "formats/model_config.h"
#include "formats/nvfp4_tensors.h"
#include "util/error.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;

// Where a planned output tensor comes from.
struct Source {
    std::string name;
    std::optional<NvFp4Role> role;  // set for a tensor of an NVFP4 module
    std::string module;
};

// The NVFP4 modules of a checkpoint: every prefix whose tensors `format` names and stores as
// NVFP4.
std::set<std::string> nvfp4_modules(const Checkpoint& checkpoint, QuantizationFormat format) {
    std::set<std::string> modules;
    for (const std::string& name : checkpoint.tensor_names()) {
        auto parsed = parse_nvfp4_tensor_name(format, name);
        if (parsed && !modules.contains(parsed->first) &&
            linear_storage(checkpoint, format, parsed->first) == LinearStorage::nvfp4) {
            modules.insert(parsed->first);
        }
    }
    return modules;
}

// Module names for expanding an ignore pattern: every tensor name without its last component.
std::vector<std::string> module_names(const Checkpoint& checkpoint) {
    std::set<std::string> names;
    for (const std::string& name : checkpoint.tensor_names()) {
        if (size_t dot = name.rfind('.'); dot != std::string::npos)
            names.insert(name.substr(0, dot));
    }
    return {names.begin(), names.end()};
}

void check_output_dir(const ConvertOptions& options) {
    std::error_code error;
    if (fs::exists(options.out_dir, error)) {
        if (fs::equivalent(options.out_dir, options.model_dir, error)) {
            fail("--out {} is the source checkpoint; convert writes a new directory",
                 options.out_dir);
        }
        if (!fs::is_directory(options.out_dir, error) || !fs::is_empty(options.out_dir, error)) {
            fail("--out {} already exists and is not an empty directory", options.out_dir);
        }
    }
}

size_t copy_other_files(const std::string& from, const std::string& to) {
    static const std::set<std::string> kRewritten = {"config.json", "hf_quant_config.json",
                                                     "model.safetensors.index.json"};
    size_t copied = 0;
    for (const fs::directory_entry& entry : fs::directory_iterator(from)) {
        const std::string file_name = entry.path().filename().string();
        // Shards are rewritten; `.tmp` files are a writer's unfinished output.
        if (!entry.is_regular_file() || entry.path().extension() == ".safetensors" ||
            entry.path().extension() == ".tmp" || kRewritten.contains(file_name)) {
            continue;
        }
        std::error_code error;
        fs::copy_file(entry.path(), fs::path(to) / file_name, fs::copy_options::overwrite_existing,
                      error);
        if (error) fail("cannot copy {} to {}: {}", entry.path().string(), to, error.message());
        ++copied;
    }
    return copied;
}

}  // namespace

size_t copy_checkpoint_side_files(const std::string& from, const std::string& to) {
    return copy_other_files(from, to);
}

ConvertSummary convert_nvfp4_checkpoint(const ConvertOptions& options) {
    const std::string& dir = options.model_dir;
    const QuantizationFormat to = options.format;
    if (!is_nvfp4(to)) fail("convert writes NVFP4 checkpoints (compressed-tensors or modelopt)");
    const std::string config_path = (fs::path(dir) / "config.json").string();
    if (!fs::exists(config_path)) fail("{} has no config.json", dir);
    nlohmann::json config = read_json_file(config_path);
    const QuantizationScheme scheme = read_quantization_scheme(dir, config);
    const QuantizationFormat from = scheme.format;
    if (!is_nvfp4(from)) {
        fail(
            "{} is not an NVFP4 checkpoint (its weights are {}); convert rewrites NVFP4 between "
            "compressed-tensors and modelopt",
            dir, quantization_format_name(from));
    }
    if (!scheme.kv_cache_scheme.empty()) {
        fail("{}: a KV-cache quantization scheme ({}) is not carried over by convert",
             scheme.source, scheme.kv_cache_scheme);
    }
    if (!scheme.targets.empty()) {
        fail(
            "{}: quantization targets other than every Linear ('{}') are not carried over by "
            "convert",
            scheme.source, scheme.targets.front().text());
    }
    check_output_dir(options);

    Checkpoint checkpoint = Checkpoint::open(dir);
    ProblemSink refuse = [&dir](CheckpointProblem problem) {
        fail("{}: {}: {}", dir, problem.subject, problem.message);
    };
    const bool reciprocal = from != to;
    std::map<std::string, NvFp4Linear> modules;
    for (const std::string& module : nvfp4_modules(checkpoint, from)) {
        const NvFp4TensorNames names = nvfp4_tensor_names(from, module);
        int64_t rows = 0, cols = 0;
        if (checkpoint.contains(names.packed) && checkpoint.entry(names.packed).shape.size() == 2) {
            rows = checkpoint.entry(names.packed).shape[0];
            cols = 2 * checkpoint.entry(names.packed).shape[1];
        }
        NvFp4Linear linear = *read_nvfp4_linear(checkpoint, from, module, rows, cols, refuse);
        // The other layout stores the reciprocal; a value that does not come back exactly
        // cannot be converted without changing it.
        auto check = [&](const std::string& tensor, float stored) {
            if (reciprocal && !reciprocal_round_trips(stored)) {
                fail(
                    "{}: {}: {} = {:.9g} is not exactly representable in {}: 1/(1/x) = {:.9g}; "
                    "convert refuses to change it",
                    dir, module, tensor, stored, quantization_format_name(to),
                    1.0f / (1.0f / stored));
            }
        };
        check(names.global_scale, linear.stored_global_scale);
        if (linear.stored_input_scale) check(names.input_scale, *linear.stored_input_scale);
        modules.emplace(module, std::move(linear));
    }

    // The source's shards, tensor for tensor in data order, renamed where NVFP4.
    std::vector<std::vector<TensorPlan>> shards;
    std::map<std::string, Source> sources;
    for (const std::vector<std::string>& file : checkpoint.tensors_by_file()) {
        shards.emplace_back();
        for (const std::string& name : file) {
            const SafetensorsEntry& entry = checkpoint.entry(name);
            TensorPlan plan{name, entry.dtype, entry.shape};
            Source source{name, std::nullopt, ""};
            auto parsed = parse_nvfp4_tensor_name(from, name);
            if (parsed && modules.contains(parsed->first)) {
                const auto& [module, role] = *parsed;
                source.role = role;
                source.module = module;
                plan.name = nvfp4_tensor_names(to, module).of(role);
                if (reciprocal &&
                    (role == NvFp4Role::global_scale || role == NvFp4Role::input_scale)) {
                    plan.shape = nvfp4_tensor_shape(to, role, 0, 0);
                }
            }
            sources.emplace(plan.name, std::move(source));
            shards.back().push_back(std::move(plan));
        }
    }

    auto fill = [&](const TensorPlan& plan, std::span<uint8_t> out) {
        const Source& source = sources.at(plan.name);
        if (reciprocal && source.role &&
            (*source.role == NvFp4Role::global_scale || *source.role == NvFp4Role::input_scale)) {
            const NvFp4Linear& linear = modules.at(source.module);
            const float value =
                *source.role == NvFp4Role::global_scale ? linear.global_scale : *linear.input_scale;
            write_scale_bytes(to, value, out);
            return;
        }
        Tensor tensor = checkpoint.tensor(source.name);
        FOURBIT_ASSERT(tensor.size_bytes() == out.size(), "tensor {}", source.name);
        if (!out.empty()) std::memcpy(out.data(), tensor.raw(), out.size());
    };
    write_checkpoint_shards(options.out_dir, shards, fill);

    NvFp4ExportConfig export_config;
    export_config.format = to;
    export_config.input_scales = scheme.input_scales;
    export_config.ignore = reciprocal ? ignore_list_for(to, scheme.ignore, module_names(checkpoint))
                                      : scheme.ignore_texts();
    write_nvfp4_configs(options.out_dir, config, export_config);

    ConvertSummary summary;
    summary.from = from;
    summary.n_nvfp4_modules = modules.size();
    summary.n_tensors = sources.size();
    summary.n_files_copied = copy_other_files(dir, options.out_dir);
    return summary;
}

}  // namespace fourbit
