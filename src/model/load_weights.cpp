#include <cmath>
#include <set>

#include "formats/checkpoint.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace fourbit {

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
    return fmt::format("model.layers.{}.{}", layer, suffix);
}

std::string expert_tensor_name(int64_t layer, int64_t expert, const std::string& matrix) {
    return fmt::format("model.layers.{}.block_sparse_moe.experts.{}.{}.weight", layer, expert,
                       matrix);
}

namespace {

class WeightReader {
public:
    WeightReader(const Checkpoint& checkpoint, const MiniMaxM2Config& config)
        : checkpoint_(checkpoint), config_(config) {}

    // A vector or matrix kept in f32 or bf16 (norms, embeddings, the router, its bias).
    Tensor plain(const std::string& name, const Shape& shape) {
        Tensor tensor = fetch(name, shape);
        if (tensor.dtype() != DType::bf16 && tensor.dtype() != DType::f32) {
            fail("{}: tensor {} has dtype {}, expected BF16 or F32", checkpoint_.dir(), name,
                 dtype_name(tensor.dtype()));
        }
        return tensor;
    }

    // A projection: BF16/F32, or F8_E4M3 with its `weight_scale_inv` block multipliers.
    LinearWeight linear(const std::string& prefix, int64_t rows, int64_t cols) {
        const std::string name = prefix + ".weight";
        LinearWeight weight;
        weight.weight = fetch(name, {rows, cols});
        if (weight.weight.dtype() == DType::bf16 || weight.weight.dtype() == DType::f32) {
            return weight;
        }
        if (weight.weight.dtype() != DType::f8_e4m3) {
            fail("{}: tensor {} has dtype {}, expected BF16, F32 or F8_E4M3", checkpoint_.dir(),
                 name, dtype_name(weight.weight.dtype()));
        }
        if (!config_.fp8) {
            fail("{}: tensor {} is F8_E4M3 but config.json has no fp8 quantization_config",
                 checkpoint_.dir(), name);
        }
        weight.block_rows = config_.fp8->block_rows;
        weight.block_cols = config_.fp8->block_cols;
        const std::string scale_name = prefix + ".weight_scale_inv";
        weight.block_scale = fetch(scale_name, {(rows + weight.block_rows - 1) / weight.block_rows,
                                                (cols + weight.block_cols - 1) / weight.block_cols});
        if (weight.block_scale.dtype() != DType::f32) {
            fail("{}: tensor {} has dtype {}, expected F32", checkpoint_.dir(), scale_name,
                 dtype_name(weight.block_scale.dtype()));
        }
        const float* scales = weight.block_scale.data<float>();
        for (int64_t i = 0; i < weight.block_scale.numel(); ++i) {
            if (!std::isfinite(scales[i]) || scales[i] < 0) {
                fail("{}: tensor {} holds an invalid scale {} at element {}", checkpoint_.dir(),
                     scale_name, scales[i], i);
            }
        }
        return weight;
    }

    const std::set<std::string>& used() const { return used_; }

private:
    Tensor fetch(const std::string& name, const Shape& shape) {
        if (!checkpoint_.contains(name)) {
            fail("{}: checkpoint is missing tensor {}", checkpoint_.dir(), name);
        }
        Tensor tensor = checkpoint_.tensor(name);
        if (tensor.shape() != shape) {
            fail("{}: tensor {} has shape {}, expected {} from config.json", checkpoint_.dir(),
                 name, shape_text(tensor.shape()), shape_text(shape));
        }
        used_.insert(name);
        return tensor;
    }

    const Checkpoint& checkpoint_;
    const MiniMaxM2Config& config_;
    std::set<std::string> used_;
};

}  // namespace

ModelWeights load_model_weights(const std::string& model_dir) {
    ModelWeights weights;
    weights.config = load_minimax_m2_config(model_dir);
    const MiniMaxM2Config& c = weights.config;
    Checkpoint checkpoint = Checkpoint::open(model_dir);
    WeightReader reader(checkpoint, c);

    weights.embed_tokens = reader.plain("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
    Progress progress("loading", static_cast<uint64_t>(c.num_hidden_layers), "layers");
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        LayerWeights layer;
        auto name = [i](const std::string& suffix) { return layer_tensor_name(i, suffix); };
        layer.input_norm = reader.plain(name("input_layernorm.weight"), {c.hidden_size});
        layer.q = reader.linear(name("self_attn.q_proj"), c.q_width(), c.hidden_size);
        layer.k = reader.linear(name("self_attn.k_proj"), c.kv_width(), c.hidden_size);
        layer.v = reader.linear(name("self_attn.v_proj"), c.kv_width(), c.hidden_size);
        layer.o = reader.linear(name("self_attn.o_proj"), c.hidden_size, c.q_width());
        layer.q_norm = reader.plain(name("self_attn.q_norm.weight"), {c.q_width()});
        layer.k_norm = reader.plain(name("self_attn.k_norm.weight"), {c.kv_width()});
        layer.post_attention_norm =
            reader.plain(name("post_attention_layernorm.weight"), {c.hidden_size});
        layer.router.weight = reader.plain(name("block_sparse_moe.gate.weight"),
                                           {c.num_local_experts, c.hidden_size});
        if (c.use_routing_bias) {
            layer.routing_bias = reader.plain(name("block_sparse_moe.e_score_correction_bias"),
                                              {c.num_local_experts});
        }
        for (int64_t e = 0; e < c.num_local_experts; ++e) {
            auto expert = [&](const char* matrix) {
                std::string prefix = expert_tensor_name(i, e, matrix);
                return prefix.substr(0, prefix.size() - std::string(".weight").size());
            };
            ExpertWeights weights_e;
            weights_e.gate = reader.linear(expert("w1"), c.intermediate_size, c.hidden_size);
            weights_e.up = reader.linear(expert("w3"), c.intermediate_size, c.hidden_size);
            weights_e.down = reader.linear(expert("w2"), c.hidden_size, c.intermediate_size);
            layer.experts.push_back(std::move(weights_e));
        }
        weights.layers.push_back(std::move(layer));
        progress.advance(1);
    }
    progress.finish();
    weights.final_norm = reader.plain("model.norm.weight", {c.hidden_size});
    if (c.tie_word_embeddings && !checkpoint.contains("lm_head.weight")) {
        weights.lm_head.weight = weights.embed_tokens;
    } else {
        weights.lm_head.weight = reader.plain("lm_head.weight", {c.vocab_size, c.hidden_size});
    }

    size_t unused = 0;
    for (const std::string& name : checkpoint.tensor_names()) {
        if (!reader.used().count(name)) ++unused;
    }
    // vLLM likewise skips what it does not run (MTP layers 62-64, rotary_emb.inv_freq).
    if (unused > 0) spdlog::warn("{}: {} tensors are not used by the model", model_dir, unused);
    return weights;
}

}  // namespace fourbit
