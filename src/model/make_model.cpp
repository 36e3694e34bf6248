#include "model/make_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "model/weights.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {

MiniMaxM2Config preset_config(const std::string& preset, std::optional<int64_t> layers) {
    MiniMaxM2Config c;
    c.rope_theta = 5e6;
    c.rms_norm_eps = 1e-6;
    c.max_position_embeddings = 204800;
    if (preset == "tiny") {
        c.vocab_size = 4096;
        c.hidden_size = 256;
        c.num_hidden_layers = 4;
        c.num_attention_heads = 8;
        c.num_key_value_heads = 2;
        c.head_dim = 64;
        c.rotary_dim = 32;
        c.num_local_experts = 16;
        c.num_experts_per_tok = 4;
        c.intermediate_size = 128;
    } else if (preset == "small") {
        c.vocab_size = 8192;
        c.hidden_size = 1024;
        c.num_hidden_layers = 8;
        c.num_attention_heads = 16;
        c.num_key_value_heads = 4;
        c.head_dim = 128;
        c.rotary_dim = 64;
        c.num_local_experts = 32;
        c.num_experts_per_tok = 4;
        c.intermediate_size = 512;
    } else if (preset == "m2.7-slice" || preset == "m2.7") {
        c.vocab_size = 200064;
        c.hidden_size = 3072;
        c.num_hidden_layers = preset == "m2.7" ? 62 : 4;
        c.num_attention_heads = 48;
        c.num_key_value_heads = 8;
        c.head_dim = 128;
        c.rotary_dim = 64;
        c.num_local_experts = 256;
        c.num_experts_per_tok = 8;
        c.intermediate_size = 1536;
        c.bos_token_id = 200019;
        c.eos_token_ids = {200020};
    } else {
        fail("unknown preset '{}' (tiny, small, m2.7-slice, m2.7)", preset);
    }
    if (layers) {
        if (*layers <= 0) fail("--layers must be positive, got {}", *layers);
        c.num_hidden_layers = *layers;
    }
    return c;
}

std::vector<TensorPlan> model_tensor_plan(const MiniMaxM2Config& c) {
    std::vector<TensorPlan> plan;
    auto add = [&plan](std::string name, Shape shape) {
        plan.push_back({std::move(name), DType::bf16, std::move(shape)});
    };
    add("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        auto name = [l](const char* suffix) { return layer_tensor_name(l, suffix); };
        add(name("input_layernorm.weight"), {c.hidden_size});
        add(name("self_attn.q_proj.weight"), {c.q_width(), c.hidden_size});
        add(name("self_attn.k_proj.weight"), {c.kv_width(), c.hidden_size});
        add(name("self_attn.v_proj.weight"), {c.kv_width(), c.hidden_size});
        add(name("self_attn.o_proj.weight"), {c.hidden_size, c.q_width()});
        add(name("self_attn.q_norm.weight"), {c.q_width()});
        add(name("self_attn.k_norm.weight"), {c.kv_width()});
        add(name("post_attention_layernorm.weight"), {c.hidden_size});
        add(name("block_sparse_moe.gate.weight"), {c.num_local_experts, c.hidden_size});
        add(name("block_sparse_moe.e_score_correction_bias"), {c.num_local_experts});
        for (int64_t e = 0; e < c.num_local_experts; ++e) {
            add(expert_tensor_name(l, e, "w1"), {c.intermediate_size, c.hidden_size});
            add(expert_tensor_name(l, e, "w2"), {c.hidden_size, c.intermediate_size});
            add(expert_tensor_name(l, e, "w3"), {c.intermediate_size, c.hidden_size});
        }
    }
    add("model.norm.weight", {c.hidden_size});
    add("lm_head.weight", {c.vocab_size, c.hidden_size});
    return plan;
}

namespace {

// A counter-based generator (splitmix64): element i of a tensor depends only on the seed, the
// tensor's name and i, so tensors are filled in parallel and reproducibly.
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t name_hash(const std::string& name) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    for (unsigned char ch : name) hash = (hash ^ ch) * 1099511628211ull;
    return hash;
}

double uniform(uint64_t key, uint64_t i) {
    return (static_cast<double>(mix(key ^ mix(i)) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Uniform on [-sqrt(3), sqrt(3)]: unit variance, and cheap enough to write the full M2.7 shape.
double unit_variance(uint64_t key, uint64_t i) { return 1.7320508075688772 * (2.0 * uniform(key, i) - 1.0); }

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() &&
           text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void fill_random(const TensorPlan& plan, std::span<uint8_t> out, uint64_t seed) {
    const uint64_t key = mix(seed) ^ name_hash(plan.name);
    const int64_t n = shape_numel(plan.shape);
    auto* values = reinterpret_cast<uint16_t*>(out.data());
    enum class Kind { norm, bias, embedding, matrix } kind = Kind::matrix;
    if (ends_with(plan.name, "norm.weight")) kind = Kind::norm;
    if (ends_with(plan.name, "e_score_correction_bias")) kind = Kind::bias;
    if (plan.name == "model.embed_tokens.weight") kind = Kind::embedding;
    const double matrix_std = plan.shape.size() == 2 ? 1.0 / std::sqrt(plan.shape[1]) : 1.0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        double value = 0;
        switch (kind) {
            case Kind::norm: value = 0.5 + uniform(key, i); break;         // in (0.5, 1.5)
            case Kind::bias: value = 0.1 * unit_variance(key, i); break;   // shifts selection
            case Kind::embedding: value = unit_variance(key, i); break;    // rows of norm ~sqrt(H)
            case Kind::matrix: value = matrix_std * unit_variance(key, i); break;  // unit-variance outputs
        }
        values[i] = f32_to_bf16(static_cast<float>(value));
    }
}

void write_json(const std::filesystem::path& path, const nlohmann::json& json) {
    std::ofstream out(path);
    out << json.dump(2) << "\n";
    if (!out) fail("cannot write {}", path.string());
}

}  // namespace

void make_model(const MakeModelOptions& options) {
    MiniMaxM2Config config = preset_config(options.preset, options.layers);
    if (options.bos_token_id) config.bos_token_id = options.bos_token_id;
    if (!options.eos_token_ids.empty()) config.eos_token_ids = options.eos_token_ids;
    std::filesystem::path dir(options.out_dir);
    std::filesystem::create_directories(dir);
    write_json(dir / "config.json", minimax_m2_config_to_json(config));
    nlohmann::json generation = {{"do_sample", true}, {"temperature", 1.0}, {"top_p", 0.95},
                                 {"top_k", 40}};
    if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
    if (!config.eos_token_ids.empty()) generation["eos_token_id"] = config.eos_token_ids.front();
    write_json(dir / "generation_config.json", generation);
    const uint64_t seed = options.seed;
    write_sharded_checkpoint(
        dir.string(), model_tensor_plan(config),
        [seed](const TensorPlan& plan, std::span<uint8_t> out) { fill_random(plan, out, seed); },
        options.max_shard_bytes);
}

}  // namespace fourbit
