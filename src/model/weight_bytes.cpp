#include "model/weights.h"

namespace fourbit {

namespace {

uint64_t bytes(const Tensor& tensor) { return tensor.size_bytes(); }

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
        const ExpertWeights& expert = layer.experts.front();
        total += c.num_experts_per_tok *
                 (bytes(expert.gate) + bytes(expert.up) + bytes(expert.down));
    }
    return total;
}

}  // namespace fourbit
