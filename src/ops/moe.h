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
//   h [n_tokens, hidden] f32, or bf16 for grouped experts (moe_activation_dtype)
//   out [n_tokens, hidden] f32 (overwritten)
//
// On a CUDA device both run without a host synchronisation: moe_route writes the ids and
// weights on the device, and moe_experts reads them there, over experts grouped once at load
// (group_experts, top k <= 8). Its sum over the k slots runs in slot order, which is ascending
// expert id, as on the CPU. NVFP4 experts multiply h rounded to bf16 (tensor cores); dense ones
// take h in f32, as the CPU does.
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

// The experts of one layer on a CUDA device, stacked, in one of two forms:
//   NVFP4: tiled (ops/nvfp4_tiles.h), with gate and up fused so that tile stripe s holds gate
//          rows 8s..8s+7, then up rows 8s..8s+7;
//   dense: bf16 or f32 as the checkpoint has them (an NVFP4 checkpoint's BF16 edge layers).
struct GroupedExperts {
    Tensor gate_up_codes;   // u8 [n_experts, 2 intermediate, hidden / 2]
    Tensor gate_up_scales;  // u8 [n_experts, 2 intermediate, hidden / 16]
    Tensor down_codes;      // u8 [n_experts, hidden, intermediate / 2]
    Tensor down_scales;     // u8 [n_experts, hidden, intermediate / 16]
    Tensor out_scales;      // f32 [n_experts, 3]: gate, up, down global scales x 2^19
    Tensor gate_up_dense;   // [n_experts, 2 intermediate, hidden]: the gate rows, then the up rows
    Tensor down_dense;      // [n_experts, hidden, intermediate]
    int64_t hidden = 0;
    int64_t intermediate = 0;
    int64_t count = 0;  // experts
    int64_t n_experts() const { return count; }
    bool nvfp4() const { return gate_up_codes.defined(); }
};

// The dtype in which grouped experts read h best: bf16 for NVFP4 ones, whose kernels multiply h
// rounded to bf16 whichever they are given (so bf16 rows are the same values in half the bytes
// every CTA stages), f32 for dense ones (which widen bf16 rows first).
DType moe_activation_dtype(const GroupedExperts& experts);

// The most experts a layer's grouped form takes (the CUDA grouping sorts them in one CTA).
inline constexpr int64_t kMaxGroupedExperts = 1024;

// Every expert of `experts` (on the host; NVFP4 in checkpoint layout, or all bf16, or all f32)
// grouped on `device`.
GroupedExperts group_experts(std::span<const ExpertWeights> experts, Device device);

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights);

// moe_router: the MoE block's input and its routing, as add_rms_norm(x, r, norm_weight, eps, h),
// linear(h, router, logits) and moe_route(logits, bias, k, ids, weights) in sequence, and with
// bitwise their values. On CUDA one kernel does the three for up to kMaxFusedRouterTokens tokens
// of a dense router (a decode step); otherwise they run as the three ops. With h_rounded, h is
// also written rounded to bf16 there, for experts that read it so (moe_activation_dtype).
//   x, r, h [n_tokens, hidden] f32 (x updated)   logits [n_tokens, n_experts] f32
//   h_rounded [n_tokens, hidden] bf16, or nullptr
inline constexpr int64_t kMaxFusedRouterTokens = 4;
void moe_router(Tensor& x, const Tensor& r, const Tensor& norm_weight, float eps,
                const LinearWeight& router, const Tensor& bias, int64_t k, Tensor& h,
                Tensor& logits, Tensor& expert_ids, Tensor& expert_weights,
                Tensor* h_rounded = nullptr);

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out);
void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 const GroupedExperts& experts, Tensor& out);

// swiglu: out = silu(gate) * up, elementwise over [n, width] f32.
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);

// Whether CUDA's NVFP4 moe_experts groups the routed slots by expert (one pass over an expert's
// weights per 8 of its slots) rather than giving every slot its own pass: from one slot per two
// experts on average. Host logic, so that tests can say which kernels a case runs.
bool moe_grouped_pays(int64_t n_tokens, int64_t top_k, int64_t n_experts);

namespace cpu {
void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights);
void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out);
void swiglu(const Tensor& gate, const Tensor& up, Tensor& out);
}  // namespace cpu
namespace cuda {
// Runs moe_router's fused kernel and returns true, or returns false having done nothing where
// it does not apply (more tokens, an NVFP4 router, rows wider than 4,096, over 512 experts).
bool moe_router(Tensor& x, const Tensor& r, const Tensor& norm_weight, float eps,
                const LinearWeight& router, const Tensor& bias, int64_t k, Tensor& h,
                Tensor& logits, Tensor& expert_ids, Tensor& expert_weights, Tensor* h_rounded);
void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights);
void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 const GroupedExperts& experts, Tensor& out);
// Grouped by expert for many tokens (moe_grouped_cuda.cu), which moe_experts calls where it
// pays (NVFP4, moe_grouped_pays).
void moe_experts_grouped(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                         const GroupedExperts& experts, Tensor& out);
// The dense form's kernels (moe_dense_cuda.cu), which moe_experts calls.
void moe_experts_dense(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                       const GroupedExperts& experts, Tensor& out);
}  // namespace cuda

}  // namespace fourbit
