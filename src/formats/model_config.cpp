#include "formats/model_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

namespace fourbit {

using nlohmann::json;

json read_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read {}", path);
    std::stringstream text;
    text << in.rdbuf();
    try {
        return json::parse(text.str());
    } catch (const json::parse_error& error) {
        fail("{} is not valid JSON: {}", path, error.what());
    }
}

void write_json_file(const std::string& path, const json& value) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << value.dump(2) << "\n";
    out.close();
    if (!out) fail("cannot write {}", path);
}

namespace {

// Typed field access that names the file and the field in every error.
class Fields {
public:
    Fields(const json& object, const std::string& source) : object_(object), source_(source) {}

    const json* find(const char* name) const {
        auto it = object_.find(name);
        if (it == object_.end() || it->is_null()) return nullptr;
        return &*it;
    }

    int64_t integer(const char* name, std::optional<int64_t> fallback = std::nullopt) const {
        const json* value = find(name);
        if (value == nullptr) {
            if (fallback) return *fallback;
            fail("{}: missing field '{}'", source_, name);
        }
        if (!value->is_number_integer()) {
            fail("{}: field '{}' must be an integer, got {}", source_, name, value->dump());
        }
        return value->get<int64_t>();
    }

    int64_t positive(const char* name, std::optional<int64_t> fallback = std::nullopt) const {
        int64_t value = integer(name, fallback);
        if (value <= 0) fail("{}: field '{}' must be positive, got {}", source_, name, value);
        return value;
    }

    double number(const char* name, std::optional<double> fallback = std::nullopt) const {
        const json* value = find(name);
        if (value == nullptr) {
            if (fallback) return *fallback;
            fail("{}: missing field '{}'", source_, name);
        }
        if (!value->is_number()) {
            fail("{}: field '{}' must be a number, got {}", source_, name, value->dump());
        }
        return value->get<double>();
    }

    bool boolean(const char* name, bool fallback) const {
        const json* value = find(name);
        if (value == nullptr) return fallback;
        if (!value->is_boolean()) {
            fail("{}: field '{}' must be true or false, got {}", source_, name, value->dump());
        }
        return value->get<bool>();
    }

    std::optional<std::string> string(const char* name) const {
        const json* value = find(name);
        if (value == nullptr) return std::nullopt;
        if (!value->is_string()) {
            fail("{}: field '{}' must be a string, got {}", source_, name, value->dump());
        }
        return value->get<std::string>();
    }

    // An id or a list of ids (eos_token_id is either in Hugging Face configs).
    std::vector<int64_t> id_list(const char* name) const {
        const json* value = find(name);
        if (value == nullptr) return {};
        if (value->is_number_integer()) return {value->get<int64_t>()};
        std::vector<int64_t> ids;
        if (value->is_array()) {
            for (const json& item : *value) {
                if (!item.is_number_integer()) break;
                ids.push_back(item.get<int64_t>());
            }
            if (ids.size() == value->size()) return ids;
        }
        fail("{}: field '{}' must be a token id or a list of ids, got {}", source_, name,
             value->dump());
    }

private:
    const json& object_;
    const std::string& source_;
};

void refuse_unless(bool supported, const std::string& source, const std::string& what) {
    if (!supported) fail("{}: unsupported model: {}", source, what);
}

int64_t resolve_rotary_dim(const Fields& fields, const json& root, const std::string& source,
                           int64_t head_dim) {
    // The official checkpoints say `rotary_dim`; transformers-native re-saves say
    // `rope_parameters.partial_rotary_factor` (or a top-level `partial_rotary_factor`).
    std::optional<int64_t> from_rotary_dim;
    if (fields.find("rotary_dim") != nullptr) from_rotary_dim = fields.positive("rotary_dim");
    std::optional<double> factor;
    std::string factor_field;
    if (auto it = root.find("rope_parameters"); it != root.end() && it->is_object()) {
        Fields rope(*it, source);
        if (rope.find("partial_rotary_factor") != nullptr) {
            factor = rope.number("partial_rotary_factor");
            factor_field = "rope_parameters.partial_rotary_factor";
        }
    }
    if (!factor && fields.find("partial_rotary_factor") != nullptr) {
        factor = fields.number("partial_rotary_factor");
        factor_field = "partial_rotary_factor";
    }
    std::optional<int64_t> from_factor;
    if (factor) {
        double dims = *factor * static_cast<double>(head_dim);
        if (!(*factor > 0.0 && *factor <= 1.0) || dims != std::floor(dims)) {
            fail("{}: field '{}' = {} does not give a whole rotary dimension of head_dim {}",
                 source, factor_field, *factor, head_dim);
        }
        from_factor = static_cast<int64_t>(dims);
    }
    if (from_rotary_dim && from_factor && *from_rotary_dim != *from_factor) {
        fail("{}: 'rotary_dim' = {} disagrees with '{}' (= {} of head_dim {})", source,
             *from_rotary_dim, factor_field, *from_factor, head_dim);
    }
    int64_t rotary_dim = from_rotary_dim ? *from_rotary_dim : from_factor ? *from_factor : head_dim;
    if (rotary_dim > head_dim || rotary_dim % 2 != 0) {
        fail("{}: rotary_dim {} (from '{}') must be even and at most head_dim {}", source,
             rotary_dim, from_rotary_dim ? "rotary_dim" : factor_field, head_dim);
    }
    return rotary_dim;
}

double resolve_rope_theta(const Fields& fields, const json& root, const std::string& source) {
    if (auto it = root.find("rope_scaling"); it != root.end() && !it->is_null()) {
        fail("{}: unsupported model: rope_scaling {} (MiniMax-M2 uses none)", source, it->dump());
    }
    if (auto it = root.find("rope_parameters"); it != root.end() && !it->is_null()) {
        if (!it->is_object()) fail("{}: field 'rope_parameters' must be an object", source);
        Fields rope(*it, source);
        auto type = rope.string("rope_type");
        refuse_unless(
            !type || *type == "default", source,
            fmt::format("rope_parameters.rope_type '{}' (only 'default')", type.value_or("")));
        if (rope.find("rope_theta") != nullptr) return rope.number("rope_theta");
    }
    return fields.number("rope_theta", 10000.0);
}

std::optional<Fp8BlockQuantization> resolve_quantization(const json& root,
                                                         const std::string& source) {
    auto it = root.find("quantization_config");
    if (it == root.end() || it->is_null()) return std::nullopt;
    if (!it->is_object()) fail("{}: field 'quantization_config' must be an object", source);
    Fields quant(*it, source);
    auto method = quant.string("quant_method");
    // NVFP4 checkpoints: read_quantization_scheme (formats/quantization_scheme.h) checks them.
    if (method && (*method == "compressed-tensors" || *method == "modelopt")) return std::nullopt;
    refuse_unless(method && *method == "fp8", source,
                  fmt::format("quantization_config.quant_method '{}' (supported: 'fp8' with "
                              "128x128 blocks, NVFP4 'compressed-tensors' and 'modelopt')",
                              method.value_or("(missing)")));
    auto format = quant.string("fmt");
    refuse_unless(!format || *format == "float8_e4m3fn", source,
                  fmt::format("quantization_config.fmt '{}' (supported: float8_e4m3fn)",
                              format.value_or("")));
    Fp8BlockQuantization fp8;
    const json* block = quant.find("weight_block_size");
    if (block == nullptr || !block->is_array() || block->size() != 2 ||
        !(*block)[0].is_number_integer() || !(*block)[1].is_number_integer() ||
        (*block)[0].get<int64_t>() <= 0 || (*block)[1].get<int64_t>() <= 0) {
        fail("{}: quantization_config.weight_block_size must be two positive integers, got {}",
             source, block ? block->dump() : "nothing");
    }
    fp8.block_rows = (*block)[0].get<int64_t>();
    fp8.block_cols = (*block)[1].get<int64_t>();
    if (const json* skip = quant.find("modules_to_not_convert")) {
        if (!skip->is_array()) {
            fail("{}: quantization_config.modules_to_not_convert must be a list", source);
        }
        for (const json& name : *skip) {
            if (!name.is_string()) {
                fail("{}: quantization_config.modules_to_not_convert holds a non-string {}", source,
                     name.dump());
            }
            fp8.modules_to_not_convert.push_back(name.get<std::string>());
        }
    }
    return fp8;
}

}  // namespace

MiniMaxM2Config parse_minimax_m2_config(const json& root, const std::string& source) {
    if (!root.is_object()) fail("{}: expected a JSON object", source);
    Fields fields(root, source);

    auto model_type = fields.string("model_type");
    refuse_unless(model_type && *model_type == "minimax_m2", source,
                  fmt::format("model_type '{}' (fourbit runs 'minimax_m2')",
                              model_type.value_or("(missing)")));

    MiniMaxM2Config config;
    config.vocab_size = fields.positive("vocab_size");
    config.hidden_size = fields.positive("hidden_size");
    config.num_hidden_layers = fields.positive("num_hidden_layers");
    config.num_attention_heads = fields.positive("num_attention_heads");
    config.num_key_value_heads = fields.positive("num_key_value_heads");
    config.head_dim = fields.positive("head_dim", config.hidden_size / config.num_attention_heads);
    config.intermediate_size = fields.positive("intermediate_size");
    config.num_local_experts = fields.positive("num_local_experts");
    config.num_experts_per_tok = fields.positive("num_experts_per_tok");
    config.max_position_embeddings = fields.positive("max_position_embeddings", 204800);
    config.rms_norm_eps = fields.number("rms_norm_eps", 1e-6);
    config.rope_theta = resolve_rope_theta(fields, root, source);
    config.rotary_dim = resolve_rotary_dim(fields, root, source, config.head_dim);
    config.use_routing_bias = fields.boolean("use_routing_bias", true);
    config.tie_word_embeddings = fields.boolean("tie_word_embeddings", false);
    auto bos = fields.id_list("bos_token_id");
    if (!bos.empty()) config.bos_token_id = bos.front();
    config.eos_token_ids = fields.id_list("eos_token_id");
    config.fp8 = resolve_quantization(root, source);

    if (config.num_attention_heads % config.num_key_value_heads != 0) {
        fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source,
             config.num_attention_heads, config.num_key_value_heads);
    }
    if (config.num_experts_per_tok > config.num_local_experts) {
        fail("{}: num_experts_per_tok {} exceeds num_local_experts {}", source,
             config.num_experts_per_tok, config.num_local_experts);
    }
    if (!(config.rms_norm_eps > 0) || !(config.rope_theta > 0)) {
        fail("{}: rms_norm_eps and rope_theta must be positive", source);
    }

    // What the forward pass implements, and nothing else.
    refuse_unless(fields.boolean("use_qk_norm", true), source,
                  "use_qk_norm false (MiniMax-M2 normalises q and k)");
    auto qk_norm_type = fields.string("qk_norm_type");
    refuse_unless(
        !qk_norm_type || *qk_norm_type == "per_layer", source,
        fmt::format("qk_norm_type '{}' (supported: 'per_layer')", qk_norm_type.value_or("")));
    auto scoring = fields.string("scoring_func");
    refuse_unless(!scoring || *scoring == "sigmoid", source,
                  fmt::format("scoring_func '{}' (supported: 'sigmoid')", scoring.value_or("")));
    auto activation = fields.string("hidden_act");
    refuse_unless(!activation || *activation == "silu", source,
                  fmt::format("hidden_act '{}' (supported: 'silu')", activation.value_or("")));
    refuse_unless(fields.integer("shared_intermediate_size", 0) == 0, source,
                  "shared_intermediate_size != 0 (a shared expert)");
    refuse_unless(fields.find("sliding_window") == nullptr, source,
                  "sliding_window (MiniMax-M2 attends to the full context)");
    if (const json* types = fields.find("attn_type_list")) {
        if (!types->is_array()) fail("{}: field 'attn_type_list' must be a list", source);
        if (static_cast<int64_t>(types->size()) < config.num_hidden_layers) {
            fail("{}: attn_type_list has {} entries for {} layers", source, types->size(),
                 config.num_hidden_layers);
        }
        for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
            const json& type = (*types)[layer];
            if (!type.is_number_integer() || type.get<int64_t>() != 1) {
                fail(
                    "{}: unsupported model: layer {} is not softmax attention "
                    "(attn_type_list[{}] = {}; 0 is lightning/linear attention)",
                    source, layer, layer, type.dump());
            }
        }
    }
    return config;
}

MiniMaxM2Config load_minimax_m2_config(const std::string& model_dir) {
    std::string path = (std::filesystem::path(model_dir) / "config.json").string();
    if (!std::filesystem::exists(path)) fail("{} has no config.json", model_dir);
    return parse_minimax_m2_config(read_json_file(path), path);
}

json minimax_m2_config_to_json(const MiniMaxM2Config& config) {
    json root = {
        {"architectures", {"MiniMaxM2ForCausalLM"}},
        {"model_type", "minimax_m2"},
        {"vocab_size", config.vocab_size},
        {"hidden_size", config.hidden_size},
        {"num_hidden_layers", config.num_hidden_layers},
        {"num_attention_heads", config.num_attention_heads},
        {"num_key_value_heads", config.num_key_value_heads},
        {"head_dim", config.head_dim},
        {"intermediate_size", config.intermediate_size},
        {"num_local_experts", config.num_local_experts},
        {"num_experts_per_tok", config.num_experts_per_tok},
        {"scoring_func", "sigmoid"},
        {"use_routing_bias", config.use_routing_bias},
        {"shared_intermediate_size", 0},
        {"use_qk_norm", true},
        {"qk_norm_type", "per_layer"},
        {"rotary_dim", config.rotary_dim},
        {"rope_theta", config.rope_theta},
        {"rms_norm_eps", config.rms_norm_eps},
        {"hidden_act", "silu"},
        {"max_position_embeddings", config.max_position_embeddings},
        {"attn_type_list", std::vector<int>(config.num_hidden_layers, 1)},
        {"sliding_window", nullptr},
        {"tie_word_embeddings", config.tie_word_embeddings},
        {"torch_dtype", "bfloat16"},
    };
    if (config.bos_token_id) root["bos_token_id"] = *config.bos_token_id;
    if (config.eos_token_ids.size() == 1) root["eos_token_id"] = config.eos_token_ids.front();
    if (config.eos_token_ids.size() > 1) root["eos_token_id"] = config.eos_token_ids;
    return root;
}

GenerationDefaults load_generation_defaults(const std::string& model_dir) {
    GenerationDefaults defaults;
    std::string path = (std::filesystem::path(model_dir) / "generation_config.json").string();
    if (!std::filesystem::exists(path)) return defaults;
    json root = read_json_file(path);
    if (!root.is_object()) fail("{}: expected a JSON object", path);
    Fields fields(root, path);
    if (fields.find("do_sample")) defaults.do_sample = fields.boolean("do_sample", false);
    if (fields.find("temperature")) defaults.temperature = fields.number("temperature");
    if (fields.find("top_p")) defaults.top_p = fields.number("top_p");
    if (fields.find("top_k")) defaults.top_k = fields.integer("top_k");
    if (fields.find("min_p")) defaults.min_p = fields.number("min_p");
    auto bos = fields.id_list("bos_token_id");
    if (!bos.empty()) defaults.bos_token_id = bos.front();
    defaults.eos_token_ids = fields.id_list("eos_token_id");
    return defaults;
}

}  // namespace fourbit
