// moe_route's arithmetic on CUDA, written once for moe_cuda.cu's route kernel and
// moe_router_cuda.cu's fused router, so that both choose and weigh the experts bitwise alike:
// the sigmoid takes exp in double and rounds once (a correctly rounded expf, as the CPU's), the
// choice is k rounds of a warp arg-max (highest biased score, then lowest id), and the weights
// are the chosen unbiased scores over their sum in ascending id order.
#pragma once

#include <cfloat>
#include <cstdint>

namespace fourbit::cuda {

__device__ __forceinline__ float bias_value(const float* bias, int e) { return bias[e]; }
__device__ __forceinline__ float bias_value(const uint16_t* bias, int e) {
    return __uint_as_float(static_cast<uint32_t>(bias[e]) << 16);
}

// By all of the CTA's threads: scores[e] = sigmoid(logit(e)) and choice[e] = scores[e] + bias[e]
// (no bias: nullptr) for e < n_experts, in shared memory. The caller synchronises after.
template <typename Bias, class Logit>
__device__ __forceinline__ void route_scores(Logit logit, const Bias* bias, int n_experts,
                                             float* scores, float* choice) {
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
        const float exp_negative = static_cast<float>(exp(-static_cast<double>(logit(e))));
        const float score = 1.0f / (1.0f + exp_negative);
        scores[e] = score;
        choice[e] = score + (bias != nullptr ? bias_value(bias, e) : 0.0f);
    }
}

// Up to this many experts, route_pick holds a lane's choices in registers (8 a lane) instead of
// reading them from shared memory in every round.
inline constexpr int kRegisterExperts = 256;

// By one whole warp, with no CTA barrier: the top k <= 8 of `choice` into ids[0, k) in ascending
// order and their normalised scores into weights[0, k). `chosen` is 8 ints of shared memory;
// `choice` is spent.
__device__ __forceinline__ void route_pick(const float* scores, float* choice, int n_experts, int k,
                                           int* chosen, int32_t* ids, float* weights) {
    const int lane = threadIdx.x & 31;
    constexpr int kPerLane = kRegisterExperts / 32;
    const bool in_registers = n_experts <= kRegisterExperts;
    float held[kPerLane];  // choice[lane + 32 j] when in_registers
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        held[j] = in_registers && lane + 32 * j < n_experts ? choice[lane + 32 * j] : -INFINITY;
    }
    for (int round = 0; round < k; ++round) {
        float value = -FLT_MAX;
        int id = n_experts;
        if (in_registers) {
#pragma unroll
            for (int j = 0; j < kPerLane; ++j) {
                if (held[j] > value) {  // ascending e: the first of equals is kept
                    value = held[j];
                    id = lane + 32 * j;
                }
            }
        } else {
            for (int e = lane; e < n_experts; e += 32) {
                if (choice[e] > value) {
                    value = choice[e];
                    id = e;
                }
            }
        }
        // The warp's winner in two reductions (redux.sync) instead of a five-step butterfly of
        // shuffles: the highest value as an unsigned key that orders as the floats do (-0 made
        // +0, so that it ties with +0 as the float comparison does), then the lowest id among
        // the lanes that hold it. A lane with no candidate (nothing above -FLT_MAX) offers key
        // 0, below every candidate's; with no candidate anywhere the id stays n_experts.
        const uint32_t bits = __float_as_uint(value + 0.0f);
        const uint32_t key = id == n_experts ? 0u : (bits >> 31 ? ~bits : bits | 0x80000000u);
        const uint32_t best = __reduce_max_sync(0xffffffffu, key);
        const uint32_t offer = key == best && id < n_experts ? static_cast<uint32_t>(id) : ~0u;
        const uint32_t lowest = __reduce_min_sync(0xffffffffu, offer);
        id = lowest == ~0u ? n_experts : static_cast<int>(lowest);
        // Every lane holds the winner now; its value goes below -FLT_MAX, never to be picked
        // again.
        if (lane == 0) chosen[round] = id;
        if (in_registers) {
#pragma unroll
            for (int j = 0; j < kPerLane; ++j) {
                if (id == lane + 32 * j) held[j] = -INFINITY;
            }
        } else if (lane == 0 && id < n_experts) {
            choice[id] = -INFINITY;
        }
        __syncwarp();
    }
    if (lane == 0) {
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
            ids[j] = chosen[j];
            weights[j] = scores[chosen[j]] / total;
        }
    }
}

}  // namespace fourbit::cuda
