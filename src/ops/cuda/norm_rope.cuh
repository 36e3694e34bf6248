// The arithmetic of RMSNorm and NeoX RoPE on CUDA, written once for the kernels that use it
// (rms_norm_cuda.cu, rope_cuda.cu, attention_prologue_cuda.cu), so that a fused kernel computes
// bitwise what the separate ops do. It follows the CPU reference: the sum of squares in double,
// frequencies made on the host as the CPU makes them, f32 angles, cos and sin in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/rope.h"

namespace fourbit::cuda {

// Every norm kernel's CTA (the same partial sums everywhere): 1,024 threads, so that a decode
// step's single row of 3,072 (or 6,144) takes one round of loads, not a dozen in turn.
inline constexpr int kNormThreads = 1024;
inline constexpr int kNormWarps = kNormThreads / 32;
inline constexpr int kRopeMaxHalf = kRopeCudaMaxRotaryDim / 2;

__device__ __forceinline__ float norm_weight(const float* w, int64_t i) { return w[i]; }
__device__ __forceinline__ float norm_weight(const uint16_t* w, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(w[i]) << 16);
}

// 1 / sqrt(mean(row^2) + eps) of `d` elements, by a CTA of kNormThreads threads: thread t sums
// elements t, t + kNormThreads, ... in double, each warp by a fixed shuffle tree, then warp 0
// the warps' sums the same way. `partial` is kNormWarps doubles of shared memory, free again on
// return.
__device__ __forceinline__ float rms_scale(const float* row, int64_t d, float eps, double* partial) {
    double sum = 0.0;
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) sum += static_cast<double>(row[i]) * row[i];
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        double total = partial[threadIdx.x];
        for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
        if (threadIdx.x == 0) partial[0] = total;  // after the shuffles: every lane has read
    }
    __syncthreads();
    const float scale = static_cast<float>(1.0 / sqrt(partial[0] / d + eps));
    __syncthreads();
    return scale;
}

// rms_scale_pair's shared memory.
struct RmsPairShared {
    double2 partial[kNormWarps];
    float scale[2];
};

// rms_scale of two rows at once (a token's q and k), for a kernel that has their elements in
// registers: each thread passes the sums of squares of its elements t, t + kNormThreads, ...
// added in that order in double, as rms_scale adds them, and the same shuffle trees make the
// scales bitwise rms_scale's with one set of barriers for both rows. Warp 0 alone takes the
// double-precision root and quotient rather than all 32 warps repeating them. The caller
// synchronises before it reuses `shared`.
__device__ __forceinline__ float2 rms_scale_pair(double sum_a, int64_t d_a, double sum_b,
                                                 int64_t d_b, float eps, RmsPairShared& shared) {
    for (int offset = 16; offset > 0; offset /= 2) {
        sum_a += __shfl_xor_sync(0xffffffffu, sum_a, offset);
        sum_b += __shfl_xor_sync(0xffffffffu, sum_b, offset);
    }
    if (threadIdx.x % 32 == 0) shared.partial[threadIdx.x / 32] = make_double2(sum_a, sum_b);
    __syncthreads();
    if (threadIdx.x < 32) {
        double2 total = shared.partial[threadIdx.x];
        for (int offset = 16; offset > 0; offset /= 2) {
            total.x += __shfl_xor_sync(0xffffffffu, total.x, offset);
            total.y += __shfl_xor_sync(0xffffffffu, total.y, offset);
        }
        if (threadIdx.x < 2) {  // lane 0 the first row's scale, lane 1 the second's
            const double sum = threadIdx.x == 0 ? total.x : total.y;
            const int64_t d = threadIdx.x == 0 ? d_a : d_b;
            shared.scale[threadIdx.x] = static_cast<float>(1.0 / sqrt(sum / d + eps));
        }
    }
    __syncthreads();
    return make_float2(shared.scale[0], shared.scale[1]);
}

struct RopeFrequencies {
    float inv_freq[kRopeMaxHalf];
};

// inv_freq[i] = theta^(-2i / rotary_dim), as the CPU reference computes it.
inline RopeFrequencies rope_frequencies(double theta, int64_t rotary_dim) {
    RopeFrequencies f{};
    for (int64_t i = 0; i < rotary_dim / 2; ++i) {
        f.inv_freq[i] = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / rotary_dim));
    }
    return f;
}

// cos and sin of position x inv_freq[i], i < half, into shared memory (computed once per
// token, not once per head: double-precision cos and sin are the expensive part). The caller
// synchronises before rope_rotate reads them.
__device__ __forceinline__ void rope_angles(float position, const RopeFrequencies& f, int half,
                                            float* cosines, float* sines) {
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float angle = position * f.inv_freq[i];
        cosines[i] = static_cast<float>(cos(static_cast<double>(angle)));
        sines[i] = static_cast<float>(sin(static_cast<double>(angle)));
    }
}

// Rotates the first 2 half dimensions of each of a token's heads, pairs (i, i + half), by the
// CTA's threads, with rope_angles' cosines and sines.
__device__ __forceinline__ void rope_rotate(float* token, const float* cosines, const float* sines,
                                            int n_heads, int head_dim, int half) {
    for (int index = threadIdx.x; index < n_heads * half; index += blockDim.x) {
        const int h = index / half, i = index % half;
        const float c = cosines[i], s = sines[i];
        float* head = token + h * head_dim;
        const float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

}  // namespace fourbit::cuda
