#include "ops/moe.h"

#include "util/error.h"

namespace fourbit {

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights) {
    FOURBIT_ASSERT(router_logits.rank() == 2 && router_logits.dtype() == DType::f32,
                   "moe_route: logits {}", shape_text(router_logits.shape()));
    const int64_t n_tokens = router_logits.dim(0), n_experts = router_logits.dim(1);
    FOURBIT_ASSERT(k > 0 && k <= n_experts, "moe_route: top {} of {}", k, n_experts);
    FOURBIT_ASSERT(!bias.defined() || bias.numel() == 0 ||
                       (bias.rank() == 1 && bias.dim(0) == n_experts &&
                        (bias.dtype() == DType::f32 || bias.dtype() == DType::bf16)),
                   "moe_route: bias {}", shape_text(bias.shape()));
    FOURBIT_ASSERT(expert_ids.dtype() == DType::i32 && expert_ids.shape() == Shape({n_tokens, k}) &&
                       expert_weights.dtype() == DType::f32 &&
                       expert_weights.shape() == Shape({n_tokens, k}),
                   "moe_route: outputs {} {}", shape_text(expert_ids.shape()),
                   shape_text(expert_weights.shape()));
    cpu::moe_route(router_logits, bias, k, expert_ids, expert_weights);
}

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out) {
    FOURBIT_ASSERT(h.rank() == 2 && h.dtype() == DType::f32 && out.shape() == h.shape() &&
                       out.dtype() == DType::f32,
                   "moe_experts: h {} out {}", shape_text(h.shape()), shape_text(out.shape()));
    FOURBIT_ASSERT(expert_ids.rank() == 2 && expert_ids.dim(0) == h.dim(0) &&
                       expert_weights.shape() == expert_ids.shape(),
                   "moe_experts: routing {} for h {}", shape_text(expert_ids.shape()),
                   shape_text(h.shape()));
    for (const ExpertWeights& expert : experts) {
        FOURBIT_ASSERT(expert.gate.cols() == h.dim(1) && expert.up.cols() == h.dim(1) &&
                           expert.down.rows() == h.dim(1) &&
                           expert.down.cols() == expert.gate.rows() &&
                           expert.up.rows() == expert.gate.rows(),
                       "moe_experts: expert shapes do not match hidden {}", h.dim(1));
    }
    cpu::moe_experts(h, expert_ids, expert_weights, experts, out);
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
    FOURBIT_ASSERT(gate.shape() == up.shape() && out.shape() == gate.shape() &&
                       gate.dtype() == DType::f32 && up.dtype() == DType::f32 &&
                       out.dtype() == DType::f32,
                   "swiglu: gate {} up {} out {}", shape_text(gate.shape()), shape_text(up.shape()),
                   shape_text(out.shape()));
    cpu::swiglu(gate, up, out);
}

}  // namespace fourbit
