// The exact GEMV's dot products (dense weights, x kept in f32 as the CPU keeps it): one warp per
// weight row, each lane summing its 16-byte slices of the row in increasing column order, then a
// fixed shuffle tree. The weights come by streaming loads (ops/cuda/streaming_load.cuh), so
// that the x rows every warp re-reads stay in L1. Written once for linear_cuda.cu's decode GEMV and
// moe_router_cuda.cu's router, so that the two compute bitwise the same logits.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/streaming_load.cuh"

namespace fourbit::cuda {

__device__ __forceinline__ float widen(float w) { return w; }
__device__ __forceinline__ float widen(__nv_bfloat16 w) { return __bfloat162float(w); }

// Where x's rows are read from: global memory through the read-only cache, or shared memory.
struct GlobalRows {
    __device__ __forceinline__ float4 operator()(const float* at) const {
        return __ldg(reinterpret_cast<const float4*>(at));
    }
};
struct SharedRows {
    __device__ __forceinline__ float4 operator()(const float* at) const {
        return *reinterpret_cast<const float4*>(at);
    }
};

// acc[r] += w[r] . x over one 16-byte load of weights a row, in order, each x vector read once
// for every row. x is read in 16-byte vectors (rows are 16-byte aligned): a lane's 8 scalar
// loads 32 bytes apart from its neighbours' cost a warp 8 cache lines each, which made the
// router 8x slower than its arithmetic at prefill sizes.
template <int kRows, typename W, int kPerLoad, class Load>
__device__ __forceinline__ void multiply_add(const W (&w)[kRows][kPerLoad], const float* x,
                                             Load load, float (&acc)[kRows]) {
#pragma unroll
    for (int j = 0; j < kPerLoad; j += 4) {
        const float4 v = load(x + j);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            acc[r] += widen(w[r][j]) * v.x;
            acc[r] += widen(w[r][j + 1]) * v.y;
            acc[r] += widen(w[r][j + 2]) * v.z;
            acc[r] += widen(w[r][j + 3]) * v.w;
        }
    }
}

// sum[t][r] = row r . x[t] for kRows rows row_stride elements apart, of which the first
// `valid` exist (the others repeat the last of them), and t < m <= kTokens (x's rows x_stride
// floats apart), in every lane of the calling warp. kUnroll 16-byte loads a row and lane are in
// flight before their products. Each sum is added in the same order whatever kRows and kUnroll:
// more rows a warp only share the x loads (the lm_head at several tokens is bound by them).
template <int kRows, int kTokens, int kUnroll, typename W, class Load>
__device__ __forceinline__ void exact_rows_dots(const W* first_row, int64_t row_stride, int valid,
                                                const float* x, int64_t x_stride, int m, int k,
                                                Load load, float (&sum)[kTokens][kRows]) {
    const W* rows[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        rows[r] = kRows == 1 ? first_row : first_row + (r < valid ? r : valid - 1) * row_stride;
    }
    const int lane = threadIdx.x & 31;
    constexpr int kPerLoad = 16 / sizeof(W);
    constexpr int kStep = 32 * kPerLoad;
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) sum[t][r] = 0.0f;
    }
    const int vector_end = k - k % kStep;
    int i = lane * kPerLoad;
    for (; i + (kUnroll - 1) * kStep < vector_end; i += kUnroll * kStep) {
        W values[kUnroll][kRows][kPerLoad];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                *reinterpret_cast<uint4*>(values[u][r]) =
                    load_streaming(reinterpret_cast<const uint4*>(rows[r] + i + u * kStep));
            }
        }
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
            if (t < m) {
                const float* xt = x + t * x_stride + i;
#pragma unroll
                for (int u = 0; u < kUnroll; ++u)
                    multiply_add(values[u], xt + u * kStep, load, sum[t]);
            }
        }
    }
    for (; i < vector_end; i += kStep) {
        W values[kRows][kPerLoad];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            *reinterpret_cast<uint4*>(values[r]) =
                load_streaming(reinterpret_cast<const uint4*>(rows[r] + i));
        }
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
            if (t < m) multiply_add(values, x + t * x_stride + i, load, sum[t]);
        }
    }
    for (int i = vector_end + lane; i < k; i += 32) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const float value = widen(rows[r][i]);
            for (int t = 0; t < m; ++t) sum[t][r] += value * x[t * x_stride + i];
        }
    }
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
        if (t < m) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                for (int offset = 16; offset > 0; offset /= 2) {
                    sum[t][r] += __shfl_xor_sync(0xffffffffu, sum[t][r], offset);
                }
            }
        }
    }
}

// exact_rows_dots of one row: sum[t] = row . x[t].
template <int kTokens, int kUnroll, typename W, class Load>
__device__ __forceinline__ void exact_row_dots(const W* row, const float* x, int64_t x_stride,
                                               int m, int k, Load load, float (&sum)[kTokens]) {
    float sums[kTokens][1];
    exact_rows_dots<1, kTokens, kUnroll>(row, 0, 1, x, x_stride, m, k, load, sums);
#pragma unroll
    for (int t = 0; t < kTokens; ++t) sum[t] = sums[t][0];
}

}  // namespace fourbit::cuda
