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

// route_pick's keys: an expert already chosen is 0; one whose choice is no number to compare
// (NaN, or not above -FLT_MAX) is 1, below every comparable choice, so that a row short of
// candidates (NaN logits from a broken model) still gets distinct experts that exist, the
// lowest ids first, rather than an id past the last expert for the expert kernels to read.
inline constexpr uint32_t kTakenKey = 0u, kIncomparableKey = 1u;
// What route_pick writes into `choice` for a taken expert when it reads the choices from shared
// memory (a NaN that no arithmetic produces).
inline constexpr uint32_t kTakenBits = 0xffffffffu;

// A choice as an unsigned key that orders as the floats do (-0 made +0 first, so that it ties
// with +0 as the float comparison does): comparable choices map above 0x00800000.
__device__ __forceinline__ uint32_t choice_key(float value) {
    if (__float_as_uint(value) == kTakenBits) return kTakenKey;
    if (!(value > -FLT_MAX)) return kIncomparableKey;
    const uint32_t bits = __float_as_uint(value + 0.0f);
    return bits >> 31 ? ~bits : bits | 0x80000000u;
}

// The lane's best of its keys[j] (expert lane + 32 j): the highest key, the lowest j among
// equals, by a tree three compares deep (a chain of eight made each round eight compares long).
template <int kPerLane>
__device__ __forceinline__ void lane_best(const uint32_t (&keys)[kPerLane], uint32_t& key, int& j) {
    static_assert(kPerLane == 8, "a tree of eight");
    uint32_t k4[4];
    int j4[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const bool left = keys[2 * i] >= keys[2 * i + 1];
        k4[i] = left ? keys[2 * i] : keys[2 * i + 1];
        j4[i] = left ? 2 * i : 2 * i + 1;
    }
    const bool left0 = k4[0] >= k4[1], left1 = k4[2] >= k4[3];
    const uint32_t k2a = left0 ? k4[0] : k4[1], k2b = left1 ? k4[2] : k4[3];
    const int j2a = left0 ? j4[0] : j4[1], j2b = left1 ? j4[2] : j4[3];
    const bool left = k2a >= k2b;
    key = left ? k2a : k2b;
    j = left ? j2a : j2b;
}

// By one whole warp, with no CTA barrier: the top k <= 8 of `choice` into ids[0, k) in ascending
// order and their normalised scores into weights[0, k). `chosen` is 8 ints of shared memory;
// `choice` is spent (its first k floats hold the chosen scores at the end).
__device__ __forceinline__ void route_pick(const float* scores, float* choice, int n_experts, int k,
                                           int* chosen, int32_t* ids, float* weights) {
    const int lane = threadIdx.x & 31;
    constexpr int kPerLane = kRegisterExperts / 32;
    const bool in_registers = n_experts <= kRegisterExperts;
    uint32_t keys[kPerLane];  // choice_key(choice[lane + 32 j]) when in_registers
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        keys[j] = in_registers && lane + 32 * j < n_experts ? choice_key(choice[lane + 32 * j])
                                                            : kTakenKey;
    }
    int mine = n_experts;  // lane r < k: the expert chosen in round r
    for (int round = 0; round < k; ++round) {
        uint32_t key = kTakenKey;
        int id = n_experts;
        if (in_registers) {
            int j;
            lane_best(keys, key, j);
            id = lane + 32 * j;
        } else {
            for (int e = lane; e < n_experts; e += 32) {
                const uint32_t candidate = choice_key(choice[e]);
                if (candidate > key) {  // ascending e: the first of equals is kept
                    key = candidate;
                    id = e;
                }
            }
        }
        // The warp's winner in two reductions (redux.sync): the highest key, then the lowest id
        // among the lanes that hold it; with every expert taken (fewer than k) n_experts.
        const uint32_t best = __reduce_max_sync(0xffffffffu, key);
        const uint32_t offer = key == best && key != kTakenKey ? static_cast<uint32_t>(id) : ~0u;
        const uint32_t lowest = __reduce_min_sync(0xffffffffu, offer);
        id = lowest == ~0u ? n_experts : static_cast<int>(lowest);
        if (lane == round) mine = id;
        // The winner is taken.
        if (in_registers) {
#pragma unroll
            for (int j = 0; j < kPerLane; ++j) {
                if (id == lane + 32 * j) keys[j] = kTakenKey;
            }
        } else {
            if (lane == 0 && id < n_experts) choice[id] = __uint_as_float(kTakenBits);
            __syncwarp();
        }
    }
    // Lane r < k places its expert by rank (ascending ids; equal ids, possible only as
    // n_experts when the experts ran out, in round order), the weights' total is summed in that
    // order as the contract says, and each lane divides its own.
    int rank = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int other = __shfl_sync(0xffffffffu, mine, i);
        if (i < k && (other < mine || (other == mine && i < lane))) ++rank;
    }
    __syncwarp();  // every lane is done with `choice` (the rounds' reads)
    if (lane < k) {
        chosen[rank] = mine;
        choice[rank] = mine < n_experts ? scores[mine] : 0.0f;
    }
    __syncwarp();
    float total = 0.0f;
    for (int j = 0; j < k; ++j) total += choice[j];
    if (lane < k) {
        ids[lane] = chosen[lane];
        weights[lane] = choice[lane] / total;
    }
}

}  // namespace fourbit::cuda
