// The weights of a MiniMax-M2 checkpoint, as zero-copy views of its safetensors files, checked
// against config.json tensor by tensor when loaded.
#pragma once

#include <string>
#include <vector>

#include "formats/model_config.h"
#include "ops/linear.h"
#include "ops/moe.h"
#include "tensor/tensor.h"

namespace fourbit {

struct LayerWeights {
    Tensor input_norm;           // [hidden]
    LinearWeight q, k, v, o;     // [q_width, hidden], [kv_width, hidden] x2, [hidden, q_width]
    Tensor q_norm;               // [q_width]  per_layer QK-norm: one weight per element
    Tensor k_norm;               // [kv_width]
    Tensor post_attention_norm;  // [hidden]
    LinearWeight router;         // `block_sparse_moe.gate` [n_experts, hidden]
    Tensor routing_bias;         // `e_score_correction_bias` [n_experts]; empty without it
    std::vector<ExpertWeights> experts;
};

struct ModelWeights {
    MiniMaxM2Config config;
    Tensor embed_tokens;  // [vocab, hidden]
    std::vector<LayerWeights> layers;
    Tensor final_norm;     // [hidden]
    LinearWeight lm_head;  // [vocab, hidden]
};

// Reads DIR/config.json and the checkpoint's tensors (BF16, F32, or MiniMax's FP8 E4M3 with
// 128x128 `weight_scale_inv` blocks). A missing tensor, a wrong shape or dtype, or an FP8
// weight without a valid scale is an Error naming the tensor.
ModelWeights load_model_weights(const std::string& model_dir);

// The official tensor names, e.g. "model.layers.3.block_sparse_moe.experts.7.w1.weight".
std::string layer_tensor_name(int64_t layer, const std::string& suffix);
std::string expert_tensor_name(int64_t layer, int64_t expert, const std::string& matrix);

}  // namespace fourbit

namespace fourbit {

// Bytes of weights one decode step reads at batch 1: every attention and router matrix, the
// k routed experts of each layer, the norms, one embedding row and the head. The numerator of
// the decode roofline (bytes per token / memory bandwidth).
uint64_t weight_bytes_per_decoded_token(const ModelWeights& weights);

}  // namespace fourbit
