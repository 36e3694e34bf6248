// The linear modules of a MiniMax-M2 checkpoint (the layers a quantizer quantizes and an ignore
// list names), with their shapes and the fused groups vLLM loads as one matrix.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/model_config.h"

namespace fourbit {

struct LinearModule {
    std::string prefix;  // "model.layers.3.self_attn.q_proj"; tensors are prefix + ".weight", ...
    int64_t rows = 0;    // output features N
    int64_t cols = 0;    // input features K
    int64_t layer = -1;  // -1 for lm_head
    // Modules vLLM concatenates into one matrix, which must share one global scale (and input
    // scale): q/k/v of a layer ("model.layers.3.self_attn.qkv_proj") and w1/w3 of an expert
    // ("model.layers.3.block_sparse_moe.experts.7.w13"). Empty for the others.
    std::string fused_group;
};

// Every linear module in checkpoint order: per layer q, k, v, o, the router, then each expert's
// w1, w2, w3; lm_head last (also when tied, so that it can be listed).
std::vector<LinearModule> minimax_m2_linear_modules(const MiniMaxM2Config& config);

}  // namespace fourbit
