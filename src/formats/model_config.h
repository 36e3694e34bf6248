// config.json of a MiniMax-M2-family checkpoint (`model_type: minimax_m2`): the official fields
// and the transformers-native re-saves, validated so that anything the engine cannot run is
// refused with the field that says so. Also generation_config.json's sampling defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace fourbit {

// MiniMax's published weight format: FP8 E4M3 with one f32 multiplier (`weight_scale_inv`)
// per block of weight elements (minimax_m2.md §2.7).
struct Fp8BlockQuantization {
    int64_t block_rows = 128;
    int64_t block_cols = 128;
    std::vector<std::string> modules_to_not_convert;
};

struct MiniMaxM2Config {
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;
    int64_t head_dim = 0;
    int64_t intermediate_size = 0;  // per-expert FFN width
    int64_t num_local_experts = 0;
    int64_t num_experts_per_tok = 0;
    int64_t rotary_dim = 0;  // partial RoPE: the first rotary_dim of head_dim rotate
    int64_t max_position_embeddings = 0;
    double rope_theta = 0;
    double rms_norm_eps = 0;
    bool use_routing_bias = true;
    bool tie_word_embeddings = false;
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;
    std::optional<Fp8BlockQuantization> fp8;  // NVFP4 schemes: formats/quantization_scheme.h

    int64_t q_width() const { return num_attention_heads * head_dim; }
    int64_t kv_width() const { return num_key_value_heads * head_dim; }
};

// Parses and validates; `source` names the file in every error.
MiniMaxM2Config parse_minimax_m2_config(const nlohmann::json& json, const std::string& source);
// Reads DIR/config.json.
MiniMaxM2Config load_minimax_m2_config(const std::string& model_dir);
// The official layout's config.json (rotary_dim, qk_norm_type, attn_type_list, ...).
nlohmann::json minimax_m2_config_to_json(const MiniMaxM2Config& config);

// Sampling defaults from generation_config.json; absent fields stay empty.
struct GenerationDefaults {
    std::optional<bool> do_sample;
    std::optional<double> temperature;
    std::optional<double> top_p;
    std::optional<int64_t> top_k;
    std::optional<double> min_p;
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;
};

// Reads DIR/generation_config.json if present (else all empty); malformed -> Error.
GenerationDefaults load_generation_defaults(const std::string& model_dir);

// Reads and parses a JSON file, with the file and the parser's position in any error.
nlohmann::json read_json_file(const std::string& path);
// Writes `json` indented by 2 with a final newline; Error naming the path on failure.
void write_json_file(const std::string& path, const nlohmann::json& json);

}  // namespace fourbit
