#include "quantize/export_nvfp4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/convert_checkpoint.h"
#include "formats/model_config.h"
#include "formats/nvfp4_tensors.h"
#include "model/make_model.h"
#include "nvfp4/quantize.h"
#include "tensor/numeric.h"
#include "util/error.h"
#include "util/progress.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;

// The source weight of `prefix` as f32: BF16/F32 as stored, FP8 blocks times their
// `weight_scale_inv` multiplier.
std::vector<float> weight_values(const Checkpoint& checkpoint, const MiniMaxM2Config& config,
                                 const std::string& prefix) {
    const Tensor weight = checkpoint.tensor(prefix + ".weight");
    if (weight.rank() != 2) fail("{}: {}.weight is not a matrix", checkpoint.dir(), prefix);
    const int64_t rows = weight.dim(0), cols = weight.dim(1);
    std::vector<float> values(rows * cols);
    switch (weight.dtype()) {
        case DType::f32:
            std::memcpy(values.data(), weight.raw(), values.size() * sizeof(float));
            break;
        case DType::bf16: {
            const uint16_t* bits = weight.data<uint16_t>();
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < rows * cols; ++i) values[i] = bf16_to_f32(bits[i]);
            break;
        }
        case DType::f8_e4m3: {
            if (!config.fp8) fail("{}: {}.weight is FP8 but config.json has no fp8 scheme",
                                  checkpoint.dir(), prefix);
            const Tensor scale = checkpoint.tensor(prefix + ".weight_scale_inv");
            const int64_t block_rows = config.fp8->block_rows, block_cols = config.fp8->block_cols;
            if (scale.dtype() != DType::f32 || scale.rank() != 2 ||
                scale.dim(0) != (rows + block_rows - 1) / block_rows ||
                scale.dim(1) != (cols + block_cols - 1) / block_cols) {
                fail("{}: {}.weight_scale_inv does not fit the FP8 blocks of its weight",
                     checkpoint.dir(), prefix);
            }
            const uint8_t* codes = weight.data<uint8_t>();
            const float* scales = scale.data<float>();
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t c = 0; c < cols; ++c) {
                    values[r * cols + c] = f8_e4m3_to_f32(codes[r * cols + c]) *
                                           scales[(r / block_rows) * scale.dim(1) + c / block_cols];
                }
            }
            break;
        }
        default:
            fail("{}: {}.weight has dtype {}; quantize reads BF16, F32 or FP8 E4M3",
                 checkpoint.dir(), prefix, dtype_name(weight.dtype()));
    }
    return values;
}

float parallel_amax(const std::vector<float>& values, const std::string& name) {
    float amax = 0.0f;
    bool finite = true;
#pragma omp parallel for reduction(max : amax) reduction(&& : finite) schedule(static)
    for (size_t i = 0; i < values.size(); ++i) {
        amax = std::max(amax, std::fabs(values[i]));
        finite = finite && std::isfinite(values[i]);
    }
    if (!finite) checked_amax(values, name);  // names the first bad element
    return amax;
}

// quantize_nvfp4 over bands of rows in parallel (rows are independent).
NvFp4Matrix quantize_rows_parallel(const std::vector<float>& values, int64_t rows, int64_t cols,
                                   float global_scale, const std::string& name) {
    NvFp4Matrix out;
    out.rows = rows;
    out.cols = cols;
    out.global_scale = global_scale;
    out.packed.assign(rows * cols / 2, 0);
    out.block_scales.assign(rows * cols / kNvFp4BlockSize, 0);
    constexpr int64_t kBand = 64;
    const int64_t n_bands = (rows + kBand - 1) / kBand;
    std::exception_ptr error;
#pragma omp parallel for schedule(dynamic)
    for (int64_t band = 0; band < n_bands; ++band) {
        const int64_t row = band * kBand, n = std::min(kBand, rows - row);
        try {
            NvFp4Matrix part = quantize_nvfp4(
                std::span<const float>(values).subspan(row * cols, n * cols), n, cols,
                global_scale, name);
            std::copy(part.packed.begin(), part.packed.end(), out.packed.begin() + row * cols / 2);
            std::copy(part.block_scales.begin(), part.block_scales.end(),
                      out.block_scales.begin() + row * cols / kNvFp4BlockSize);
        } catch (...) {
#pragma omp critical
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
    // The refusal a published checkpoint needed: no NaN block scale (0x7f / 0xff in E4M3).
    for (size_t i = 0; i < out.block_scales.size(); ++i) {
        if ((out.block_scales[i] & 0x7f) == 0x7f) {
            fail("{}: block scale {} is NaN; refusing to write it", name, i);
        }
    }
    return out;
}

const std::string& group_of(const LinearModule& module) {
    return module.fused_group.empty() ? module.prefix : module.fused_group;
}

// Removes what an earlier (maybe interrupted) export left: shards, index, configs.
void clear_previous_export(const std::string& dir) {
    if (!fs::is_directory(dir)) return;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() &&
            (name.ends_with(".safetensors") || name.ends_with(".safetensors.tmp") ||
             name == "model.safetensors.index.json" || name == "hf_quant_config.json")) {
            fs::remove(entry.path());
        }
    }
}

}  // namespace

std::vector<float> source_weight_amax(const std::string& source_dir, const QuantizationPlan& plan) {
    Checkpoint checkpoint = Checkpoint::open(source_dir);
    const MiniMaxM2Config config = load_minimax_m2_config(source_dir);
    std::vector<float> amax(plan.modules.size(), 0.0f);
    Progress progress("weight amax", static_cast<uint64_t>(plan.n_quantized()), "modules");
    for (size_t i = 0; i < plan.modules.size(); ++i) {
        if (!plan.quantized[i]) continue;
        const std::string& prefix = plan.modules[i].prefix;
        amax[i] = parallel_amax(weight_values(checkpoint, config, prefix), prefix);
        progress.advance(1);
    }
    progress.finish();
    return amax;
}

ExportSummary export_nvfp4(const ExportRequest& request) {
    FOURBIT_ASSERT(request.plan != nullptr && is_nvfp4(request.format), "export request");
    const QuantizationPlan& plan = *request.plan;
    const std::string& dir = request.source_dir;
    Checkpoint checkpoint = Checkpoint::open(dir);
    nlohmann::json config_json = read_json_file((fs::path(dir) / "config.json").string());
    const MiniMaxM2Config config = parse_minimax_m2_config(config_json, dir + "/config.json");
    const QuantizationScheme scheme = read_quantization_scheme(dir, config_json);
    if (is_nvfp4(scheme.format)) {
        fail("{} is already NVFP4; quantize reads BF16 or FP8 checkpoints", dir);
    }

    ExportSummary summary;
    // One global scale and one input scale per fused group: the maximum over its members.
    std::map<std::string, float> group_weight_amax, group_input_amax;
    std::map<std::string, size_t> module_index;
    for (size_t i = 0; i < plan.modules.size(); ++i) {
        module_index.emplace(plan.modules[i].prefix, i);
        if (!plan.quantized[i]) continue;
        // Checked per member: a NaN would vanish in the group's maximum.
        const float amax = request.input_amax.at(i);
        if (!std::isfinite(amax) || !(amax > 0.0f)) {
            fail("{} has no finite, positive calibrated input amax ({}){}; refusing to export an "
                 "input scale for it",
                 plan.modules[i].prefix, amax,
                 amax == 0.0f ? " (no calibration token reached it)" : "");
        }
        const std::string& group = group_of(plan.modules[i]);
        group_input_amax[group] = std::max(group_input_amax[group], amax);
    }
    summary.weight_amax = source_weight_amax(dir, plan);
    for (size_t i = 0; i < plan.modules.size(); ++i) {
        if (!plan.quantized[i]) continue;
        float& group_amax = group_weight_amax[group_of(plan.modules[i])];
        group_amax = std::max(group_amax, summary.weight_amax[i]);
        ++summary.n_quantized;
    }

    // The plan: the source's shards, tensor for tensor; a quantized module's `.weight`
    // becomes its four NVFP4 tensors, FP8 scales go with their weights.
    struct Source {
        std::string tensor;
        int64_t module = -1;  // plan index for NVFP4 tensors and dequantized FP8 weights
        std::optional<NvFp4Role> role;
    };
    std::map<std::string, Source> sources;
    std::vector<std::vector<TensorPlan>> shards;
    for (const std::vector<std::string>& file : checkpoint.tensors_by_file()) {
        shards.emplace_back();
        for (const std::string& name : file) {
            const SafetensorsEntry& entry = checkpoint.entry(name);
            const size_t dot = name.rfind('.');
            const std::string prefix = dot == std::string::npos ? name : name.substr(0, dot);
            const std::string suffix = dot == std::string::npos ? "" : name.substr(dot + 1);
            auto found = module_index.find(prefix);
            if (found == module_index.end()) {
                sources[name] = {name, -1, std::nullopt};
                shards.back().push_back({name, entry.dtype, entry.shape});
                continue;
            }
            const int64_t index = static_cast<int64_t>(found->second);
            if (suffix == "weight_scale_inv") continue;  // consumed with its FP8 weight
            if (suffix != "weight") fail("{}: unexpected tensor {} of a linear module", dir, name);
            const LinearModule& module = plan.modules[index];
            if (!plan.quantized[index]) {
                if (entry.dtype == DType::f8_e4m3) {
                    sources[name] = {name, index, std::nullopt};
                    shards.back().push_back({name, DType::bf16, entry.shape});
                    ++summary.n_dequantized_fp8;
                } else {
                    sources[name] = {name, -1, std::nullopt};
                    shards.back().push_back({name, entry.dtype, entry.shape});
                }
                continue;
            }
            const NvFp4TensorNames names = nvfp4_tensor_names(request.format, module.prefix);
            for (NvFp4Role role : {NvFp4Role::packed, NvFp4Role::block_scale,
                                   NvFp4Role::global_scale, NvFp4Role::input_scale}) {
                sources[names.of(role)] = {name, index, role};
                shards.back().push_back(
                    {names.of(role), nvfp4_tensor_dtype(role),
                     nvfp4_tensor_shape(request.format, role, module.rows, module.cols)});
            }
        }
    }

    // The writer asks for a module's tensors in its own order; the last quantized module is
    // kept so that its codes and block scales are computed once.
    int64_t cached_module = -1;
    NvFp4Matrix cached;
    auto quantized = [&](int64_t index) -> const NvFp4Matrix& {
        if (cached_module == index) return cached;
        const LinearModule& module = plan.modules[index];
        const float scale = nvfp4_export_global_scale(group_weight_amax.at(group_of(module)));
        cached_module = -1;
        cached = quantize_rows_parallel(weight_values(checkpoint, config, module.prefix),
                                        module.rows, module.cols, scale, module.prefix);
        cached_module = index;
        return cached;
    };
    auto fill = [&](const TensorPlan& plan_entry, std::span<uint8_t> out) {
        const Source& source = sources.at(plan_entry.name);
        if (source.module < 0) {
            Tensor tensor = checkpoint.tensor(source.tensor);
            FOURBIT_ASSERT(tensor.size_bytes() == out.size(), "tensor {}", source.tensor);
            if (!out.empty()) std::memcpy(out.data(), tensor.raw(), out.size());
            return;
        }
        const LinearModule& module = plan.modules[source.module];
        if (!source.role) {  // an ignored FP8 module, written as BF16
            const std::vector<float> values = weight_values(checkpoint, config, module.prefix);
            auto* bits = reinterpret_cast<uint16_t*>(out.data());
            for (size_t i = 0; i < values.size(); ++i) bits[i] = f32_to_bf16(values[i]);
            return;
        }
        const std::string& group = group_of(module);
        switch (*source.role) {
            case NvFp4Role::global_scale:
                write_scale_bytes(request.format,
                                  nvfp4_export_global_scale(group_weight_amax.at(group)), out);
                return;
            case NvFp4Role::input_scale:
                write_scale_bytes(request.format,
                                  nvfp4_export_global_scale(group_input_amax.at(group)), out);
                return;
            case NvFp4Role::packed:
            case NvFp4Role::block_scale: {
                const NvFp4Matrix& matrix = quantized(source.module);
                const std::vector<uint8_t>& bytes =
                    *source.role == NvFp4Role::packed ? matrix.packed : matrix.block_scales;
                FOURBIT_ASSERT(bytes.size() == out.size(), "tensor {}", plan_entry.name);
                std::copy(bytes.begin(), bytes.end(), out.begin());
                return;
            }
        }
    };
    for (const auto& [group, amax] : group_weight_amax) {
        const float scale = nvfp4_export_global_scale(amax);
        if (!std::isfinite(scale) || !(scale > 0)) {
            fail("{}: weight global scale {} is not finite and positive; refusing to write it",
                 group, scale);
        }
        const float input = nvfp4_export_global_scale(group_input_amax.at(group));
        if (!std::isfinite(input) || !(input > 0) || !std::isfinite(1.0f / input)) {
            fail("{}: input scale {} (amax {}) is out of range; refusing to write it", group,
                 input, group_input_amax.at(group));
        }
    }

    fs::create_directories(request.out_dir);
    clear_previous_export(request.out_dir);
    write_checkpoint_shards(request.out_dir, shards, fill);
    config_json.erase("quantization_config");  // the FP8 block of an official checkpoint
    NvFp4ExportConfig export_config;
    export_config.format = request.format;
    export_config.input_scales = true;
    std::vector<ModulePattern> patterns;
    std::vector<std::string> names;
    for (const std::string& text : plan.ignore) {
        patterns.push_back(ModulePattern::parse(text, "the ignore list"));
    }
    for (const LinearModule& module : plan.modules) names.push_back(module.prefix);
    names.push_back("model.embed_tokens");
    export_config.ignore = ignore_list_for(request.format, patterns, names);
    write_nvfp4_configs(request.out_dir, config_json, export_config);
    copy_checkpoint_side_files(dir, request.out_dir);
    summary.n_tensors = static_cast<int64_t>(sources.size());
    for (const fs::directory_entry& entry : fs::directory_iterator(request.out_dir)) {
        if (entry.is_regular_file()) summary.bytes_written += entry.file_size();
    }
    return summary;
}

}  // namespace fourbit
