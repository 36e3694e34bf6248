// The MoE block on CUDA with no host synchronisation: the router's top k on the device, then
// the grouped NVFP4 experts read the ids it wrote (ops/cuda/nvfp4_gemv.cuh): one kernel for
// gate/up + SiLU over every routed slot, one for down + the weighted sum in slot order.
#include <cfloat>

#include "ops/cuda/nvfp4_gemv.cuh"
#include "ops/cuda/stream.h"
#include "ops/moe.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kRouteThreads = 256;

// One CTA per token. Scores live in shared memory; then warp 0 alone picks the experts: k
// rounds of a warp arg-max (highest biased score, then lowest id) with no CTA barrier in
// between, and its lane 0 sorts them and normalises as the CPU does. The sigmoid takes exp in
// double and rounds once, matching a correctly rounded expf.
template <typename Bias>
__global__ void route_kernel(const float* logits, const Bias* bias, int n_experts, int k,
                             int32_t* ids, float* weights) {
    extern __shared__ float shared[];
    float* scores = shared;
    float* choice = shared + n_experts;
    __shared__ int chosen[8];
    const float* row = logits + static_cast<int64_t>(blockIdx.x) * n_experts;
    for (int e = threadIdx.x; e < n_experts; e += kRouteThreads) {
        const float exp_negative = static_cast<float>(exp(-static_cast<double>(row[e])));
        const float score = 1.0f / (1.0f + exp_negative);
        float b = 0.0f;
        if (bias != nullptr) {
            if constexpr (sizeof(Bias) == 2) {
                b = __uint_as_float(static_cast<uint32_t>(bias[e]) << 16);
            } else {
                b = bias[e];
            }
        }
        scores[e] = score;
        choice[e] = score + b;
    }
    __syncthreads();
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x;
    for (int round = 0; round < k; ++round) {
        float value = -FLT_MAX;
        int id = n_experts;
        for (int e = lane; e < n_experts; e += 32) {
            if (choice[e] > value) {  // ascending e: the first of equals is kept
                value = choice[e];
                id = e;
            }
        }
        for (int offset = 16; offset > 0; offset /= 2) {
            const float other_value = __shfl_xor_sync(0xffffffffu, value, offset);
            const int other_id = __shfl_xor_sync(0xffffffffu, id, offset);
            if (other_value > value || (other_value == value && other_id < id)) {
                value = other_value;
                id = other_id;
            }
        }
        // Every lane holds the winner now (the order is total, so the butterfly agrees).
        if (lane == 0) {
            chosen[round] = id;
            if (id < n_experts) choice[id] = -INFINITY;  // below -FLT_MAX: never picked again
        }
        __syncwarp();
    }
    if (threadIdx.x == 0) {
        for (int i = 1; i < k; ++i) {  // ascending ids, as the contract says
            const int id = chosen[i];
            int j = i - 1;
            while (j >= 0 && chosen[j] > id) {
                chosen[j + 1] = chosen[j];
                --j;
            }
            chosen[j + 1] = id;
        }
        float total = 0.0f;
        for (int j = 0; j < k; ++j) total += scores[chosen[j]];
        for (int j = 0; j < k; ++j) {
            ids[blockIdx.x * k + j] = chosen[j];
            weights[blockIdx.x * k + j] = scores[chosen[j]] / total;
        }
    }
}

}  // namespace

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights) {
    const int64_t n_tokens = router_logits.dim(0), n_experts = router_logits.dim(1);
    if (n_tokens == 0) return;
    DeviceScope scope(router_logits.device().index);
    const size_t shared_bytes = static_cast<size_t>(2 * n_experts) * sizeof(float);
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
    Scratch mid(static_cast<size_t>(slots * experts.intermediate) * sizeof(float));
    FOURBIT_CUDA_CHECK(nvfp4::launch_moe(view, expert_ids.data<int32_t>(),
                                         expert_weights.data<float>(), h.data<float>(),
                                         static_cast<int>(n_tokens), static_cast<int>(top_k),
                                         mid.as<float>(), out.data<float>(), stream));
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
