// How a checkpoint's linear weights are quantized, from its configs (nvfp4.md §2): none (BF16),
// MiniMax's FP8 blocks, or NVFP4 in either on-disk layout, compressed-tensors
// (`nvfp4-pack-quantized`, config.json) or ModelOpt (hf_quant_config.json, or config.json's
// flat `quant_method: modelopt`). Also the writers of those config blocks.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/module_pattern.h"

namespace fourbit {

enum class QuantizationFormat {
    none,                      // every linear weight BF16 / F32
    fp8_block,                 // MiniMax's FP8 E4M3 with 128x128 `weight_scale_inv`
    nvfp4_compressed_tensors,  // weight_packed, weight_scale, weight_global_scale (2688 / amax)
    nvfp4_modelopt,            // weight (u8), weight_scale, weight_scale_2 (amax / 2688)
};

// "bf16", "fp8", "compressed-tensors", "modelopt".
std::string_view quantization_format_name(QuantizationFormat format);
inline bool is_nvfp4(QuantizationFormat format) {
    return format == QuantizationFormat::nvfp4_compressed_tensors ||
           format == QuantizationFormat::nvfp4_modelopt;
}

struct QuantizationScheme {
    QuantizationFormat format = QuantizationFormat::none;
    // Modules left unquantized (compressed-tensors `ignore`, ModelOpt `exclude_modules`,
    // FP8 `modules_to_not_convert`).
    std::vector<ModulePattern> ignore;
    // compressed-tensors `targets` other than the class name `Linear` (which targets every
    // linear module); empty = every linear module is targeted.
    std::vector<ModulePattern> targets;
    // The config declares quantized activations (W4A4): every NVFP4 module should carry an
    // input scale. False for weight-only NVFP4 (W4A16).
    bool input_scales = false;
    std::string kv_cache_scheme;  // ModelOpt kv_cache_quant_algo or CT kv_cache_scheme; "" if none
    std::string source;           // the file the scheme was read from, for messages

    // The ignore pattern that keeps `module` unquantized, or nullptr.
    const ModulePattern* ignored_by(std::string_view module) const {
        return first_match(ignore, module);
    }
    // Whether the config says `module` (a linear layer) is stored quantized.
    bool quantizes(std::string_view module) const;
    std::vector<std::string> ignore_texts() const;
};

// Reads the scheme of checkpoint `dir` from its parsed config.json and, when present,
// `dir/hf_quant_config.json` (authoritative for ModelOpt, as vLLM reads it). Anything fourbit
// does not run (other compressed-tensors formats, a group size other than 16, ModelOpt
// MIXED_PRECISION, ...) is an Error naming the file and the field.
QuantizationScheme read_quantization_scheme(const std::string& dir, const nlohmann::json& config);

// The same from JSON already in memory (`hf_quant_config` may be null); `source` names the
// config file in errors.
QuantizationScheme parse_quantization_scheme(const nlohmann::json& config,
                                             const nlohmann::json* hf_quant_config,
                                             const std::string& source);

// What a writer declares: the layout, the ignore list (already in that layout's spelling) and
// whether input scales are stored.
struct NvFp4ExportConfig {
    QuantizationFormat format = QuantizationFormat::nvfp4_compressed_tensors;
    std::vector<std::string> ignore;
    bool input_scales = true;
};

// config.json's `quantization_config` block: compressed-tensors exactly as nvfp4.md §2.2,
// ModelOpt's flat form as §2.1.
nlohmann::json nvfp4_quantization_config(const NvFp4ExportConfig& config);
// ModelOpt's hf_quant_config.json (§2.1), with the keys vLLM requires even when null.
nlohmann::json modelopt_hf_quant_config(const NvFp4ExportConfig& config);
// Writes DIR/config.json (`model_config` with quantization_config set) and, for ModelOpt,
// DIR/hf_quant_config.json.
void write_nvfp4_configs(const std::string& dir, nlohmann::json model_config,
                         const NvFp4ExportConfig& config);

// An ignore list in `format`'s spelling: patterns the format's loaders understand are kept;
// regexes become wildcards for ModelOpt and wildcards become regexes for compressed-tensors
// (module_pattern.h). A pattern with no twin is replaced by the exact names it matches among
// `module_names`.
std::vector<std::string> ignore_list_for(QuantizationFormat format,
                                         const std::vector<ModulePattern>& patterns,
                                         const std::vector<std::string>& module_names);

}  // namespace fourbit
