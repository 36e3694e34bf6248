// The two halves of a MiniMax-M2 MoE block.
//
// moe_route: s = sigmoid(router_logits); experts are SELECTED by the top k of s + bias (the
// `e_score_correction_bias`), but WEIGHTED by the unbiased s of those experts, renormalised to
// sum 1 (no routed scaling). Ties go to the lower expert id.
//   router_logits [n_tokens, n_experts] f32    bias [n_experts] f32 or bf16, or undefined
//   expert_ids    [n_tokens, k] i32 (ascending)  expert_weights [n_tokens, k] f32
//
// moe_experts: out[t] = sum_j weight[t, j] * W2_e (silu(W1_e h[t]) * W3_e h[t]), e = ids[t, j];
// contributions are added in ascending expert id, as transformers does.
//   h [n_tokens, hidden] f32   out [n_tokens, hidden] f32 (overwritten)
#pragma once

#include <span>

#include "ops/linear.h"
#include "tensor/tensor.h"

namespace fourbit {

struct ExpertWeights {
    LinearWeight gate;  // w1 [intermediate, hidden]
    LinearWeight up;    // w3 [intermediate, hidden]
    LinearWeight down;  // w2 [hidden, intermediate]
};

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights);

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out);

// swiglu: out = silu(gate) * up, elementwise over [n, width] f32.
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);

namespace cpu {
void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights);
void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out);
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);
}  // namespace cpu

}  // namespace fourbit
