// Reading and writing the quantization blocks of config.json and ModelOpt's hf_quant_config.json.
#include "formats/quantization_scheme.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "util/error.h"

namespace fourbit {

using nlohmann::json;

namespace {

constexpr const char* kHfQuantConfigName = "hf_quant_config.json";
constexpr int64_t kNvFp4GroupSize = 16;
constexpr const char* kProducerName = "fourbit";
constexpr const char* kProducerVersion = "0.1.0";

// `where` is the file and field ("config.json: quantization_config.ignore").
std::vector<ModulePattern> parse_pattern_list(const json* list, const std::string& where,
                                              const std::string& source) {
    std::vector<ModulePattern> patterns;
    if (list == nullptr || list->is_null()) return patterns;
    if (!list->is_array()) fail("{} must be a list of module names, got {}", where, list->dump());
    for (const json& item : *list) {
        if (!item.is_string()) fail("{} holds {}, which is not a string", where, item.dump());
        patterns.push_back(ModulePattern::parse(item.get<std::string>(), source));
    }
    return patterns;
}

const json* member(const json& object, const char* name) {
    if (!object.is_object()) return nullptr;
    auto it = object.find(name);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string string_field(const json& object, const char* name, const std::string& where) {
    const json* value = member(object, name);
    if (value == nullptr) return "";
    if (!value->is_string()) fail("{}.{} must be a string, got {}", where, name, value->dump());
    return value->get<std::string>();
}

void require_group_size(const json& args, const std::string& where) {
    const json* size = member(args, "group_size");
    if (size == nullptr) return;
    if (!size->is_number_integer() || size->get<int64_t>() != kNvFp4GroupSize) {
        fail("{}: group_size {} (NVFP4 uses blocks of {})", where, size->dump(), kNvFp4GroupSize);
    }
}

// One compressed-tensors QuantizationArgs block of the NVFP4 scheme: 4-bit floats in
// tensor_group blocks of 16.
void check_nvfp4_args(const json& args, const std::string& where) {
    if (!args.is_object()) fail("{} must be an object, got {}", where, args.dump());
    const json* bits = member(args, "num_bits");
    const std::string type = args.value("type", "");
    if (bits == nullptr || !bits->is_number_integer() || bits->get<int64_t>() != 4 ||
        type != "float") {
        fail(
            "{}: num_bits {} type '{}' is not NVFP4 (4-bit float); fourbit reads "
            "nvfp4-pack-quantized only",
            where, bits ? bits->dump() : "(missing)", type);
    }
    const std::string strategy = args.value("strategy", "tensor_group");
    if (strategy != "tensor_group") {
        fail("{}: strategy '{}' (NVFP4 is 'tensor_group')", where, strategy);
    }
    require_group_size(args, where);
}

QuantizationScheme parse_compressed_tensors(const json& quant, const std::string& source) {
    QuantizationScheme scheme;
    scheme.format = QuantizationFormat::nvfp4_compressed_tensors;
    scheme.source = source;
    const std::string where = source + ": quantization_config";
    const std::string format = string_field(quant, "format", where);
    if (format != "nvfp4-pack-quantized") {
        fail("{}.format '{}': fourbit reads compressed-tensors 'nvfp4-pack-quantized' only", where,
             format.empty() ? "(missing)" : format);
    }
    const std::string status = string_field(quant, "quantization_status", where);
    if (!status.empty() && status != "compressed") {
        fail("{}.quantization_status '{}' (expected 'compressed': packed weights)", where, status);
    }
    const json* groups = member(quant, "config_groups");
    if (groups == nullptr || !groups->is_object() || groups->empty()) {
        fail("{}.config_groups is missing or empty", where);
    }
    std::optional<bool> input_scales;
    bool targets_every_linear = false;
    for (const auto& [name, group] : groups->items()) {
        const std::string group_where = where + ".config_groups." + name;
        const json* weights = member(group, "weights");
        if (weights == nullptr) fail("{}.weights is missing", group_where);
        check_nvfp4_args(*weights, group_where + ".weights");
        const json* inputs = member(group, "input_activations");
        if (inputs != nullptr) check_nvfp4_args(*inputs, group_where + ".input_activations");
        if (input_scales && *input_scales != (inputs != nullptr)) {
            fail("{}: groups disagree on quantized activations (W4A4 and W4A16 mixed)", where);
        }
        input_scales = inputs != nullptr;
        if (member(group, "output_activations") != nullptr) {
            fail("{}.output_activations: quantized outputs are not supported", group_where);
        }
        const std::string group_format = string_field(group, "format", group_where);
        if (!group_format.empty() && group_format != "nvfp4-pack-quantized") {
            fail("{}.format '{}' (fourbit reads nvfp4-pack-quantized)", group_where, group_format);
        }
        for (ModulePattern& target :
             parse_pattern_list(member(group, "targets"), group_where + ".targets", source)) {
            // The class name `Linear` targets every linear module.
            if (target.text() == "Linear") {
                targets_every_linear = true;
            } else {
                scheme.targets.push_back(std::move(target));
            }
        }
    }
    if (targets_every_linear) scheme.targets.clear();
    scheme.input_scales = input_scales.value_or(false);
    scheme.ignore = parse_pattern_list(member(quant, "ignore"), where + ".ignore", source);
    if (const json* kv = member(quant, "kv_cache_scheme")) scheme.kv_cache_scheme = kv->dump();
    return scheme;
}

// ModelOpt's `quantization` object (hf_quant_config.json) or its flat copy in config.json.
QuantizationScheme parse_modelopt(const json& quant, const std::string& where,
                                  const std::string& source) {
    QuantizationScheme scheme;
    scheme.format = QuantizationFormat::nvfp4_modelopt;
    scheme.source = source;
    const std::string algo = string_field(quant, "quant_algo", where);
    if (algo == "NVFP4") {
        scheme.input_scales = true;
    } else if (algo == "W4A16_NVFP4") {
        scheme.input_scales = false;
    } else {
        fail("{}.quant_algo '{}': fourbit reads ModelOpt NVFP4 and W4A16_NVFP4", where,
             algo.empty() ? "(missing)" : algo);
    }
    require_group_size(quant, where);
    if (const json* groups = member(quant, "config_groups"); groups && groups->is_object()) {
        for (const auto& [name, group] : groups->items()) {
            if (const json* weights = member(group, "weights")) {
                require_group_size(*weights, where + ".config_groups." + name + ".weights");
            }
        }
    }
    const char* list_name = member(quant, "exclude_modules") ? "exclude_modules" : "ignore";
    scheme.ignore = parse_pattern_list(member(quant, list_name), where + "." + list_name, source);
    scheme.kv_cache_scheme = string_field(quant, "kv_cache_quant_algo", where);
    return scheme;
}

json nvfp4_args(bool activations, QuantizationFormat format) {
    if (format == QuantizationFormat::nvfp4_modelopt) {
        return {{"dynamic", false}, {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
    }
    return {{"num_bits", 4},
            {"type", "float"},
            {"symmetric", true},
            {"strategy", "tensor_group"},
            {"group_size", 16},
            {"dynamic", activations ? json("local") : json(false)},
            {"observer", "static_minmax"}};
}

}  // namespace

std::string_view quantization_format_name(QuantizationFormat format) {
    switch (format) {
        case QuantizationFormat::none:
            return "bf16";
        case QuantizationFormat::fp8_block:
            return "fp8";
        case QuantizationFormat::nvfp4_compressed_tensors:
            return "compressed-tensors";
        case QuantizationFormat::nvfp4_modelopt:
            return "modelopt";
    }
    return "?";
}

bool QuantizationScheme::quantizes(std::string_view module) const {
    if (format == QuantizationFormat::none || ignored_by(module) != nullptr) return false;
    return targets.empty() || first_match(targets, module) != nullptr;
}

std::vector<std::string> QuantizationScheme::ignore_texts() const {
    std::vector<std::string> texts;
    for (const ModulePattern& pattern : ignore) texts.push_back(pattern.text());
    return texts;
}

QuantizationScheme parse_quantization_scheme(const json& config, const json* hf_quant_config,
                                             const std::string& source) {
    if (hf_quant_config != nullptr) {
        const json* quant = member(*hf_quant_config, "quantization");
        if (quant == nullptr || !quant->is_object()) {
            fail("{}: hf_quant_config.json has no \"quantization\" object", source);
        }
        return parse_modelopt(*quant, source + ": quantization", source);
    }
    const json* quant = member(config, "quantization_config");
    QuantizationScheme scheme;
    scheme.source = source;
    if (quant == nullptr) return scheme;
    if (!quant->is_object()) fail("{}: quantization_config must be an object", source);
    const std::string method = string_field(*quant, "quant_method", source);
    if (method == "compressed-tensors") return parse_compressed_tensors(*quant, source);
    if (method == "modelopt") {
        const json* nested = member(*quant, "quantization");
        return parse_modelopt(nested ? *nested : *quant, source + ": quantization_config", source);
    }
    if (method == "fp8") {
        scheme.format = QuantizationFormat::fp8_block;
        scheme.ignore =
            parse_pattern_list(member(*quant, "modules_to_not_convert"),
                               source + ": quantization_config.modules_to_not_convert", source);
        return scheme;
    }
    fail(
        "{}: unsupported model: quantization_config.quant_method '{}' (supported: 'fp8', "
        "'compressed-tensors' nvfp4-pack-quantized, 'modelopt' NVFP4)",
        source, method.empty() ? "(missing)" : method);
}

QuantizationScheme read_quantization_scheme(const std::string& dir, const json& config) {
    namespace fs = std::filesystem;
    const fs::path hf_path = fs::path(dir) / kHfQuantConfigName;
    const std::string config_path = (fs::path(dir) / "config.json").string();
    std::error_code error;
    if (fs::exists(hf_path, error)) {
        json hf = read_json_file(hf_path.string());
        return parse_quantization_scheme(config, &hf, hf_path.string());
    }
    return parse_quantization_scheme(config, nullptr, config_path);
}

json nvfp4_quantization_config(const NvFp4ExportConfig& config) {
    FOURBIT_ASSERT(is_nvfp4(config.format), "not an NVFP4 format");
    const json inputs = config.input_scales ? nvfp4_args(true, config.format) : json(nullptr);
    if (config.format == QuantizationFormat::nvfp4_compressed_tensors) {
        return {{"quant_method", "compressed-tensors"},
                {"format", "nvfp4-pack-quantized"},
                {"quantization_status", "compressed"},
                {"config_groups",
                 {{"group_0",
                   {{"targets", {"Linear"}},
                    {"weights", nvfp4_args(false, config.format)},
                    {"input_activations", inputs},
                    {"output_activations", nullptr}}}}},
                {"ignore", config.ignore},
                {"kv_cache_scheme", nullptr}};
    }
    json group = {{"weights", nvfp4_args(false, config.format)}, {"targets", {"Linear"}}};
    if (config.input_scales) group["input_activations"] = inputs;
    return {{"config_groups", {{"group_0", group}}},
            {"ignore", config.ignore},
            {"quant_algo", config.input_scales ? "NVFP4" : "W4A16_NVFP4"},
            {"producer", {{"name", kProducerName}, {"version", kProducerVersion}}},
            {"quant_method", "modelopt"}};
}

json modelopt_hf_quant_config(const NvFp4ExportConfig& config) {
    return {{"producer", {{"name", kProducerName}, {"version", kProducerVersion}}},
            {"quantization",
             {{"quant_algo", config.input_scales ? "NVFP4" : "W4A16_NVFP4"},
              {"kv_cache_quant_algo", nullptr},
              {"group_size", kNvFp4GroupSize},
              {"exclude_modules", config.ignore}}}};
}

void write_nvfp4_configs(const std::string& dir, json model_config,
                         const NvFp4ExportConfig& config) {
    namespace fs = std::filesystem;
    model_config["quantization_config"] = nvfp4_quantization_config(config);
    write_json_file((fs::path(dir) / "config.json").string(), model_config);
    const fs::path hf_path = fs::path(dir) / kHfQuantConfigName;
    if (config.format == QuantizationFormat::nvfp4_modelopt) {
        write_json_file(hf_path.string(), modelopt_hf_quant_config(config));
    } else {
        // A stale ModelOpt file would make the directory read as ModelOpt.
        std::error_code error;
        fs::remove(hf_path, error);
    }
}

std::vector<std::string> ignore_list_for(QuantizationFormat format,
                                         const std::vector<ModulePattern>& patterns,
                                         const std::vector<std::string>& module_names) {
    std::vector<std::string> out;
    auto add = [&out](const std::string& text) {
        if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(text);
    };
    for (const ModulePattern& pattern : patterns) {
        if (format == QuantizationFormat::nvfp4_compressed_tensors) {
            add(pattern_as_regex(pattern));
        } else if (format == QuantizationFormat::nvfp4_modelopt) {
            if (auto wildcard = pattern_as_wildcard(pattern)) {
                add(*wildcard);
            } else {
                for (const std::string& name : module_names) {
                    if (pattern.matches(name)) add(name);
                }
            }
        } else {
            add(pattern.text());
        }
    }
    return out;
}

}  // namespace fourbit
