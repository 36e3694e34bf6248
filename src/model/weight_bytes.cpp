#include <algorithm>

#include "model/weights.h"

namespace fourbit {

namespace {

uint64_t bytes(const Tensor& tensor) { return tensor.defined() ? tensor.size_bytes() : 0; }

uint64_t bytes(const LinearWeight& weight) {
    return weight.weight.size_bytes() + weight.block_scale.size_bytes();
}

}  // namespace

uint64_t weight_bytes_per_decoded_token(const ModelWeights& weights) {
    const MiniMaxM2Config& c = weights.config;
    uint64_t total = bytes(weights.embed_tokens) / c.vocab_size + bytes(weights.final_norm) +
                     bytes(weights.lm_head);
    for (const LayerWeights& layer : weights.layers) {
        total += bytes(layer.input_norm) + bytes(layer.q) + bytes(layer.k) + bytes(layer.v) +
                 bytes(layer.o) + bytes(layer.q_norm) + bytes(layer.k_norm) +
                 bytes(layer.post_attention_norm) + bytes(layer.router) +
                 bytes(layer.routing_bias);
        // Experts are alike in size; a token reads k of them.
        uint64_t expert_bytes = 0;
        if (!layer.experts.empty()) {
            const ExpertWeights& expert = layer.experts.front();
            expert_bytes = bytes(expert.gate) + bytes(expert.up) + bytes(expert.down);
        } else {
            const GroupedExperts& g = layer.grouped_experts;
            expert_bytes = (bytes(g.gate_up_codes) + bytes(g.gate_up_scales) +
                            bytes(g.down_codes) + bytes(g.down_scales) + bytes(g.gate_up_dense) +
                            bytes(g.down_dense)) /
                           std::max<int64_t>(g.count, 1);
        }
        total += c.num_experts_per_tok * expert_bytes;
    }
    return total;
}

}  // namespace fourbit
