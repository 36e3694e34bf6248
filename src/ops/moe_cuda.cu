// The MoE block on CUDA with no host synchronisation: the router's top k on the device, then
// the grouped NVFP4 experts read the ids it wrote (ops/cuda/nvfp4_gemv.cuh): one kernel for
// gate/up + SiLU over every routed slot, one for down + the weighted sum in slot order.
#include "ops/cuda/nvfp4_gemv.cuh"
#include "ops/cuda/round_bf16.h"
#include "ops/cuda/route_top_k.cuh"
#include "ops/cuda/stream.h"
#include "ops/moe.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kRouteThreads = 256;

// One CTA per token: the scores and rank keys in shared memory, then the choice by ranks
// (ops/cuda/route_top_k.cuh).
template <typename Bias>
__global__ void route_kernel(const float* logits, const Bias* bias, int n_experts, int k,
                             int32_t* ids, float* weights) {
    extern __shared__ __align__(16) uint64_t shared_keys[];  // 16: count_above reads key pairs
    const RouteLayout at(n_experts, k);
    uint64_t* keys = shared_keys;
    uint64_t* candidates = keys + at.key_stride();
    float* scores = reinterpret_cast<float*>(candidates + at.candidate_stride());
    __shared__ uint64_t best[1][8];
    __shared__ int chosen[1][8];
    __shared__ float picked[1][8];
    const float* row = logits + static_cast<int64_t>(blockIdx.x) * n_experts;
    route_scores([&](int, int e) { return row[e]; }, bias, at, 1, scores, keys);
    __syncthreads();
    route_choose(scores, keys, candidates, at, 1, best, chosen, picked, ids + blockIdx.x * k,
                 weights + blockIdx.x * k);
}

}  // namespace

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights) {
    const int64_t n_tokens = router_logits.dim(0), n_experts = router_logits.dim(1);
    if (n_tokens == 0) return;
    DeviceScope scope(router_logits.device().index);
    const size_t shared_bytes =
        RouteLayout(static_cast<int>(n_experts), static_cast<int>(k)).key_bytes(1) +
        static_cast<size_t>(n_experts) * sizeof(float);
    const unsigned blocks = static_cast<unsigned>(n_tokens);
    cudaStream_t stream = current_stream();
    const bool has_bias = bias.defined() && bias.numel() > 0;
    if (has_bias && bias.dtype() == DType::bf16) {
        route_kernel<<<blocks, kRouteThreads, shared_bytes, stream>>>(
            router_logits.data<float>(), bias.data<uint16_t>(), static_cast<int>(n_experts),
            static_cast<int>(k), expert_ids.data<int32_t>(), expert_weights.data<float>());
    } else {
        route_kernel<<<blocks, kRouteThreads, shared_bytes, stream>>>(
            router_logits.data<float>(), has_bias ? bias.data<float>() : nullptr,
            static_cast<int>(n_experts), static_cast<int>(k), expert_ids.data<int32_t>(),
            expert_weights.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 const GroupedExperts& experts, Tensor& out) {
    const int64_t n_tokens = h.dim(0), top_k = expert_ids.dim(1);
    if (n_tokens == 0) return;
    if (!experts.nvfp4()) return moe_experts_dense(h, expert_ids, expert_weights, experts, out);
    if (moe_grouped_pays(n_tokens, top_k, experts.n_experts())) {
        return moe_experts_grouped(h, expert_ids, expert_weights, experts, out);
    }
    DeviceScope scope(h.device().index);
    cudaStream_t stream = current_stream();
    const nvfp4::ExpertsView view{experts.gate_up_codes.data<uint4>(),
                                  experts.gate_up_scales.data<uint2>(),
                                  experts.down_codes.data<uint4>(),
                                  experts.down_scales.data<uint2>(),
                                  experts.out_scales.data<float>(),
                                  static_cast<int>(experts.hidden),
                                  static_cast<int>(experts.intermediate)};
    const int64_t slots = n_tokens * top_k;
    Scratch mid(static_cast<size_t>(slots * experts.intermediate) * sizeof(__nv_bfloat16));
    with_rows(h, [&](const auto* rows) {
        FOURBIT_CUDA_CHECK(nvfp4::launch_moe(view, expert_ids.data<int32_t>(),
                                             expert_weights.data<float>(), rows,
                                             static_cast<int>(n_tokens), static_cast<int>(top_k),
                                             mid.as<__nv_bfloat16>(), out.data<float>(), stream));
    });
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
