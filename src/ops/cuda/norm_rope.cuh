// The arithmetic of RMSNorm and NeoX RoPE on CUDA, written once for the kernels that use it
// (rms_norm_cuda.cu, rope_cuda.cu, attention_prologue_cuda.cu), so that a fused kernel computes
// bitwise what the separate ops do. It follows the CPU reference: the sum of squares in double,
// frequencies made on the host as the CPU makes them, f32 angles, cos and sin in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/rope.h"

namespace fourbit::cuda {

inline constexpr int kNormThreads = 256;  // every norm kernel's CTA: the same partial sums
inline constexpr int kRopeMaxHalf = kRopeCudaMaxRotaryDim / 2;

__device__ __forceinline__ float norm_weight(const float* w, int64_t i) { return w[i]; }
__device__ __forceinline__ float norm_weight(const uint16_t* w, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(w[i]) << 16);
}

// 1 / sqrt(mean(row^2) + eps) of `d` elements, by a CTA of kNormThreads threads: thread t sums
// elements t, t + 256, ... in double, then a fixed tree. `partial` is kNormThreads doubles of
// shared memory, free again on return.
__device__ __forceinline__ float rms_scale(const float* row, int64_t d, float eps, double* partial) {
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) sum += static_cast<double>(row[i]) * row[i];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kNormThreads / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    const float scale = static_cast<float>(1.0 / sqrt(partial[0] / d + eps));
    __syncthreads();
    return scale;
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

// Rotates the first 2 half dimensions of each of a token's heads, pairs (i, i + half), by the
// CTA's threads.
__device__ __forceinline__ void rope_rotate(float* token, float position, const RopeFrequencies& f,
                                            int n_heads, int head_dim, int half) {
    for (int index = threadIdx.x; index < n_heads * half; index += blockDim.x) {
        const int h = index / half, i = index % half;
        const float angle = position * f.inv_freq[i];
        const float c = static_cast<float>(cos(static_cast<double>(angle)));
        const float s = static_cast<float>(sin(static_cast<double>(angle)));
        float* head = token + h * head_dim;
        const float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

}  // namespace fourbit::cuda
