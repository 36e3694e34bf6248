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
    StackedLinear qkv;           // on a CUDA device with NVFP4 q, k, v: them stacked (q, k and v
                                 // are then views of its rows); undefined otherwise
    Tensor q_norm;               // [q_width]  per_layer QK-norm: one weight per element
    Tensor k_norm;               // [kv_width]
    Tensor post_attention_norm;  // [hidden]
    LinearWeight router;         // `block_sparse_moe.gate` [n_experts, hidden]
    Tensor routing_bias;         // `e_score_correction_bias` [n_experts]; empty without it
    std::vector<ExpertWeights> experts;  // on the host
    GroupedExperts grouped_experts;      // on a CUDA device, in place of `experts`
};

struct ModelWeights {
    MiniMaxM2Config config;
    Tensor embed_tokens;  // [vocab, hidden]
    std::vector<LayerWeights> layers;
    Tensor final_norm;     // [hidden]
    LinearWeight lm_head;  // [vocab, hidden]

    Device device() const { return embed_tokens.device(); }
};

struct LoadOptions {
    // NVFP4 modules that carry an input scale quantize-dequantize their activations as W4A4
    // hardware would (LinearWeight::emulate_w4a4); the others stay weight-only.
    bool emulate_w4a4 = false;
    // Where the model runs: a CUDA device gets the weights once, in its kernels' layouts
    // (weights_to_device); W4A4 emulation is host-only.
    Device device = Device::host();
};

// Reads DIR/config.json and the checkpoint's tensors: BF16, F32, MiniMax's FP8 E4M3 with
// 128x128 `weight_scale_inv` blocks, or NVFP4 in the compressed-tensors or ModelOpt layout
// (modules on the ignore list stay BF16). A missing tensor, a wrong shape or dtype, an FP8
// weight without a valid scale, an NVFP4 scale that is NaN, infinite or not positive, fused
// modules (q/k/v, an expert's w1/w3) with different global scales, or a linear module of an
// NVFP4 checkpoint neither quantized nor ignored is an Error naming the checkpoint directory
// and the module or tensor.
ModelWeights load_model_weights(const std::string& model_dir, const LoadOptions& options = {});

// A copy of host `weights` on `device` in the layouts its kernels read: every linear module
// through linear_weight_to, each layer's experts grouped (group_experts), the rest copied. Shows
// progress per layer; the host weights stay as they were.
ModelWeights weights_to_device(const ModelWeights& weights, Device device);

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
