// moe_route's arithmetic on CUDA, written once for moe_cuda.cu's route kernel and
// moe_router_cuda.cu's fused router, so that both choose and weigh the experts bitwise alike:
// the sigmoid takes exp in double and rounds once (a correctly rounded expf, as the CPU's), the
// choice is the k highest biased scores (the lower id first among equals), and the weights are
// the chosen unbiased scores over their sum in ascending id order.
//
// The choice is made by ranks, not rounds: every expert counts the experts that beat it, first
// within its chunk of 32 (only a chunk's best k can be among the best k of all), then among the
// chunks' candidates. Each count is independent work for its own thread, where k rounds of a
// warp arg-max were a chain of dependent reductions: the fused router kernel in M2's decode
// graph 8.54 -> 8.35 us at one token (H200).
#pragma once

#include <cfloat>
#include <cstddef>
#include <cstdint>

namespace fourbit::cuda {

__device__ __forceinline__ float bias_value(const float* bias, int e) { return bias[e]; }
__device__ __forceinline__ float bias_value(const uint16_t* bias, int e) {
    return __uint_as_float(static_cast<uint32_t>(bias[e]) << 16);
}

// A choice as an unsigned key that orders as the floats do (-0 made +0 first, so that it ties
// with +0 as the float comparison does): comparable choices map above 0x00800000. One that is
// no number to compare (NaN, or not above -FLT_MAX) is 1, below every comparable choice, so
// that a row short of candidates (NaN logits from a broken model) still gets distinct experts
// that exist, the lowest ids first, rather than an id past the last expert for the expert
// kernels to read.
__device__ __forceinline__ uint32_t choice_key(float value) {
    if (!(value > -FLT_MAX)) return 1u;
    const uint32_t bits = __float_as_uint(value + 0.0f);
    return bits >> 31 ? ~bits : bits | 0x80000000u;
}

// Expert e's rank key: its choice key, then the lower id, so that every expert's key is
// distinct and "beats" is one unsigned comparison. Keys of experts are at least 2^32; a chunk
// of fewer than k experts (the last, when n is not a multiple of 32) fills its other candidate
// slots with empty_key(slot), below every expert's, distinct too.
__device__ __forceinline__ uint64_t rank_key(uint32_t choice, int e) {
    return static_cast<uint64_t>(choice) << 32 | (0xffffffffu - static_cast<uint32_t>(e));
}
__device__ __forceinline__ int rank_key_expert(uint64_t key) {
    return static_cast<int>(0xffffffffu - static_cast<uint32_t>(key));
}
__device__ __forceinline__ uint64_t empty_key(int slot) {
    return 0xffffffffu - static_cast<uint32_t>(slot);
}

// Where route_choose keeps a token's keys and candidates in shared memory: row strides even, so
// that 16-byte loads read two keys.
struct RouteLayout {
    int n, k, chunks;

    __host__ __device__ RouteLayout(int n_experts, int top_k)
        : n(n_experts), k(top_k), chunks((n_experts + 31) / 32) {}
    __host__ __device__ int key_stride() const { return n + (n & 1); }
    __host__ __device__ int candidates() const { return chunks * k; }
    __host__ __device__ int candidate_stride() const { return candidates() + (candidates() & 1); }
    // Bytes of keys and candidates for m tokens (8-byte aligned, after the scores).
    __host__ __device__ size_t key_bytes(int m) const {
        return static_cast<size_t>(m) * (key_stride() + candidate_stride()) * sizeof(uint64_t);
    }
};

// By all of the CTA's threads: scores[t n + e] = sigmoid(logit(t, e)) and keys[t key_stride + e]
// the rank key of scores + bias[e] (no bias: nullptr), for t < m and e < n. The caller
// synchronises after.
template <typename Bias, class Logit>
__device__ __forceinline__ void route_scores(Logit logit, const Bias* bias, const RouteLayout& at,
                                             int m, float* scores, uint64_t* keys) {
    for (int i = threadIdx.x; i < m * at.n; i += blockDim.x) {
        const int t = i / at.n, e = i - t * at.n;
        const float exp_negative = static_cast<float>(exp(-static_cast<double>(logit(t, e))));
        const float score = 1.0f / (1.0f + exp_negative);
        scores[i] = score;
        const float choice = score + (bias != nullptr ? bias_value(bias, e) : 0.0f);
        keys[t * at.key_stride() + e] = rank_key(choice_key(choice), e);
    }
}

// How many of keys[0, count) are above `mine`; keys is 16-byte aligned.
__device__ __forceinline__ int count_above(const uint64_t* keys, int count, uint64_t mine) {
    int above = 0;
    const int pairs = count >> 1;
#pragma unroll 8
    for (int j = 0; j < pairs; ++j) {
        const ulonglong2 two = reinterpret_cast<const ulonglong2*>(keys)[j];
        above += (two.x > mine) + (two.y > mine);
    }
    if (count & 1) above += keys[count - 1] > mine;
    return above;
}

// By all of the CTA's threads (every one reaches its barriers): for each token t < m, the top
// k <= 8 of its keys (route_scores) as ids[t k, t k + k) in ascending order, and their scores
// over the sum of the k in that order as weights. `candidates` holds the layout's candidate
// rows; `best`, `chosen` and `picked` are 8 a token of shared memory.
__device__ __forceinline__ void route_choose(const float* scores, const uint64_t* keys,
                                             uint64_t* candidates, const RouteLayout& at, int m,
                                             uint64_t (*best)[8], int (*chosen)[8],
                                             float (*picked)[8], int32_t* ids, float* weights) {
    // Each expert's place within its chunk; the chunk's best k become candidates.
    const int padded = at.chunks * 32;
    for (int i = threadIdx.x; i < m * padded; i += blockDim.x) {
        const int t = i / padded, e = i - t * padded, begin = e & ~31;
        uint64_t* chunk_candidates = candidates + t * at.candidate_stride() + (begin >> 5) * at.k;
        if (e < at.n) {
            const uint64_t* row = keys + t * at.key_stride();
            const uint64_t mine = row[e];
            const int place = count_above(row + begin, min(32, at.n - begin), mine);
            if (place < at.k) chunk_candidates[place] = mine;
        } else if (e - begin < at.k) {
            chunk_candidates[e - begin] = empty_key(e);
        }
    }
    __syncthreads();
    // Each candidate's place among them all is its place among every expert when below k: an
    // expert outside the candidates that beat it would bring its chunk's k candidates along.
    for (int i = threadIdx.x; i < m * at.candidates(); i += blockDim.x) {
        const int t = i / at.candidates(), c = i - t * at.candidates();
        const uint64_t* row = candidates + t * at.candidate_stride();
        const uint64_t mine = row[c];
        const int place = count_above(row, at.candidates(), mine);
        if (place < at.k) best[t][place] = mine;
    }
    __syncthreads();
    // Warp t: lane r < k places the expert of rank r by ascending id, the weights' total is
    // summed in that order as the contract says, and each lane divides its own.
    const int lane = threadIdx.x & 31;
    for (int t = threadIdx.x >> 5; t < m; t += blockDim.x >> 5) {
        const int mine = lane < at.k ? rank_key_expert(best[t][lane]) : at.n;
        int rank = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const int other = __shfl_sync(0xffffffffu, mine, i);
            if (i < at.k && other < mine) ++rank;
        }
        if (lane < at.k) {
            chosen[t][rank] = mine;
            picked[t][rank] = scores[t * at.n + mine];
        }
        __syncwarp();
        float total = 0.0f;
        for (int j = 0; j < at.k; ++j) total += picked[t][j];
        if (lane < at.k) {
            ids[t * at.k + lane] = chosen[t][lane];
            weights[t * at.k + lane] = picked[t][lane] / total;
        }
    }
}

}  // namespace fourbit::cuda
