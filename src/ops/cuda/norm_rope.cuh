// The arithmetic of RMSNorm and NeoX RoPE on CUDA, written once for the kernels that use it
// (rms_norm_cuda.cu, rope_cuda.cu, attention_prologue_cuda.cu), so that a fused kernel computes
// bitwise what the separate ops do. It follows the CPU reference: the sum of squares in double,
// frequencies made on the host as the CPU makes them, f32 angles, cos and sin in double.
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "ops/rope.h"
#include "tensor/tensor.h"

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

// Calls f with a norm weight's data as norm_weight reads it: const float*, or the bf16 bits as
// const uint16_t*.
template <class F>
void with_norm_weight(const Tensor& weight, F&& f) {
    if (weight.dtype() == DType::bf16) {
        f(weight.data<uint16_t>());
    } else {
        f(weight.data<float>());
    }
}

// The sum of `v` over a warp's lanes by a fixed shuffle tree (xor 16, 8, 4, 2, 1), in every
// lane: the order in which each of the norm reductions below adds, so that they agree bitwise.
__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// The scale of a row of `d` elements whose squares sum to `total`, as the CPU reference takes it.
__device__ __forceinline__ float inverse_rms(double total, int64_t d, float eps) {
    return static_cast<float>(1.0 / sqrt(total / d + eps));
}

// 1 / sqrt(mean(row^2) + eps) of `d` elements, by a CTA of kNormThreads threads: thread t sums
// elements t, t + kNormThreads, ... in double, each warp by a fixed shuffle tree, then warp 0
// the warps' sums the same way. `partial` is kNormWarps doubles of shared memory, free again on
// return.
__device__ __forceinline__ float rms_scale(const float* row, int64_t d, float eps, double* partial) {
    double sum = 0.0;
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) sum += static_cast<double>(row[i]) * row[i];
    sum = warp_sum(sum);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        const double total = warp_sum(partial[threadIdx.x]);
        if (threadIdx.x == 0) partial[0] = total;  // after the shuffles: every lane has read
    }
    __syncthreads();
    const float scale = inverse_rms(partial[0], d, eps);
    __syncthreads();
    return scale;
}

// rms_scale_pair's shared memory.
struct RmsPairShared {
    double2 partial[kNormWarps];
    float scale[2];
};

// Which of rms_scale's kNormThreads threads slot j of this thread stands for, in a CTA of
// kThreads threads (kNormThreads / kThreads slots each): itself with one slot; else pairs of
// slots (2p, 2p + 1) hold lanes i and i + 16 of one of rms_scale's warps, so that the first
// level of its shuffle tree (xor 16) is an add inside the thread. Lane 16h + i of warp w holds,
// in pair p, lanes i and i + 16 of warp 2 (kThreads / 32) p + 2w + h.
template <int kThreads>
__device__ __forceinline__ int stand_in_thread(int j) {
    if constexpr (kThreads == kNormThreads) {
        return static_cast<int>(threadIdx.x);
    } else {
        static_assert(kNormThreads % (2 * kThreads) == 0, "pairs of slots");
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        const int stand_in_warp = 2 * (kThreads / 32) * (j / 2) + 2 * warp + lane / 16;
        return 32 * stand_in_warp + lane % 16 + 16 * (j % 2);
    }
}

// rms_scale of two rows at once (a token's q and k), for a kernel that has their elements in
// registers, by a CTA of kThreads threads that stand in for rms_scale's kNormThreads: thread t
// passes, in slot j, the sums of squares that thread stand_in_thread(j) of that CTA adds (its
// elements, kNormThreads apart, in order, in double). The same shuffle trees (their xor-16 level
// inside a thread when standing in) make the scales bitwise rms_scale's, with one set of
// barriers for both rows. Warp 0 alone takes the double-precision root and quotient rather than
// every warp repeating them. The caller synchronises before it reuses `shared`.
template <int kThreads>
__device__ __forceinline__ float2 rms_scale_pair(const double (&sums_a)[kNormThreads / kThreads],
                                                 int64_t d_a,
                                                 const double (&sums_b)[kNormThreads / kThreads],
                                                 int64_t d_b, float eps, RmsPairShared& shared) {
    if constexpr (kThreads == kNormThreads) {
        const double a = warp_sum(sums_a[0]), b = warp_sum(sums_b[0]);
        if (threadIdx.x % 32 == 0) shared.partial[threadIdx.x / 32] = make_double2(a, b);
    } else {
#pragma unroll
        for (int j = 0; j < kNormThreads / kThreads; j += 2) {
            // Lane i + (lane i + 16), as the xor-16 shuffle adds them; then xor 8 .. 1 among
            // the 16 lanes that hold this warp of rms_scale's.
            double a = sums_a[j] + sums_a[j + 1], b = sums_b[j] + sums_b[j + 1];
            for (int offset = 8; offset > 0; offset /= 2) {
                a += __shfl_xor_sync(0xffffffffu, a, offset);
                b += __shfl_xor_sync(0xffffffffu, b, offset);
            }
            if (threadIdx.x % 16 == 0) {
                shared.partial[stand_in_thread<kThreads>(j) / 32] = make_double2(a, b);
            }
        }
    }
    __syncthreads();
    if (threadIdx.x < 32) {
        const double2 partial = shared.partial[threadIdx.x];
        const double2 total = make_double2(warp_sum(partial.x), warp_sum(partial.y));
        if (threadIdx.x < 2) {  // lane 0 the first row's scale, lane 1 the second's
            const double sum = threadIdx.x == 0 ? total.x : total.y;
            const int64_t d = threadIdx.x == 0 ? d_a : d_b;
            shared.scale[threadIdx.x] = inverse_rms(sum, d, eps);
        }
    }
    __syncthreads();
    return make_float2(shared.scale[0], shared.scale[1]);
}

// A row's elements as a kThreads CTA holds them for rms_scale_pair: slot [j][m] element
// stand_in_thread(j) + m kNormThreads (0 past d), every load issued at once.
template <int kThreads, int kPerThread>
__device__ __forceinline__ void load_stand_in(const float* row, int d,
                                              float (&xs)[kNormThreads / kThreads][kPerThread]) {
#pragma unroll
    for (int j = 0; j < kNormThreads / kThreads; ++j) {
#pragma unroll
        for (int m = 0; m < kPerThread; ++m) {
            const int i = stand_in_thread<kThreads>(j) + m * kNormThreads;
            xs[j][m] = i < d ? row[i] : 0.0f;
        }
    }
}

// The sums of squares a kThreads CTA passes rms_scale_pair, from load_stand_in's slots: slot j
// adds its elements in order m, in double.
template <int kThreads, int kPerThread>
__device__ __forceinline__ void stand_in_sums_of_squares(
    const float (&xs)[kNormThreads / kThreads][kPerThread], int d,
    double (&sums)[kNormThreads / kThreads]) {
#pragma unroll
    for (int j = 0; j < kNormThreads / kThreads; ++j) {
        sums[j] = 0.0;
#pragma unroll
        for (int m = 0; m < kPerThread; ++m) {
            if (stand_in_thread<kThreads>(j) + m * kNormThreads < d) {
                sums[j] += static_cast<double>(xs[j][m]) * xs[j][m];
            }
        }
    }
}

// rms_scale_one's shared memory.
struct RmsShared {
    double partial[kNormWarps];
    float scale;
};

// rms_scale_pair of a single row (rms_norm_cuda.cu's kernels, which hold the row in registers):
// `sum` is the thread's sum of squares in rms_scale's order, and the result is bitwise
// rms_scale's with two barriers instead of three. The caller synchronises before it reuses
// `shared`.
__device__ __forceinline__ float rms_scale_one(double sum, int64_t d, float eps,
                                               RmsShared& shared) {
    sum = warp_sum(sum);
    if (threadIdx.x % 32 == 0) shared.partial[threadIdx.x / 32] = sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        const double total = warp_sum(shared.partial[threadIdx.x]);
        if (threadIdx.x == 0) shared.scale = inverse_rms(total, d, eps);
    }
    __syncthreads();
    return shared.scale;
}

// A row held in registers, kPerThread slots a thread of a kNormThreads CTA: thread t holds the
// elements t, t + kNormThreads, ... (rms_scale's partition), the j-th in slot j. Loads issued
// together, so that a kernel waits for memory once.
template <int kPerThread, typename T>
__device__ __forceinline__ void load_slots(const T* row, int d, T (&slots)[kPerThread]) {
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
        const int i = threadIdx.x + j * kNormThreads;
        if (i < d) slots[j] = row[i];
    }
}

// The thread's sum of squares, added in rms_scale's order (the products are exact in double, so
// fused or not alike).
template <int kPerThread>
__device__ __forceinline__ double sum_of_squares(const float (&xs)[kPerThread], int d) {
    double sum = 0.0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
        const int i = threadIdx.x + j * kNormThreads;
        if (i < d) sum += static_cast<double>(xs[j]) * xs[j];
    }
    return sum;
}

// A normed value as the output holds it: f32, or bf16 rounded to nearest even (the input of an
// NVFP4 linear, which would round it so itself).
__device__ __forceinline__ void store_norm_output(float* out, int64_t i, float value) {
    out[i] = value;
}
__device__ __forceinline__ void store_norm_output(__nv_bfloat16* out, int64_t i, float value) {
    out[i] = __float2bfloat16_rn(value);
}

// Both at once, for a row with an exact reader and an NVFP4 one: the MoE's router (f32) and
// its experts (bf16). Offsets move both pointers, so kernels index it as they do one.
struct F32AndBf16Rows {
    float* f32;
    __nv_bfloat16* bf16;

    __device__ __forceinline__ F32AndBf16Rows operator+(int64_t offset) const {
        return {f32 + offset, bf16 + offset};
    }
};
__device__ __forceinline__ void store_norm_output(F32AndBf16Rows out, int64_t i, float value) {
    out.f32[i] = value;
    out.bf16[i] = __float2bfloat16_rn(value);
}

// out = x * scale * w, the loop kernels' expression; the weights stay as stored (f32 or bf16
// bits) until norm_weight reads them from their slots.
template <int kPerThread, typename Weight, typename Out>
__device__ __forceinline__ void store_normed(const float (&xs)[kPerThread], float scale,
                                             const Weight (&ws)[kPerThread], int d, Out out) {
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
        const int i = threadIdx.x + j * kNormThreads;
        if (i < d) store_norm_output(out, i, xs[j] * scale * norm_weight(ws, j));
    }
}

// x_out = x + r and y = rms_norm(x + r) * w for one row of d <= kPerThread x kNormThreads
// elements, by a kNormThreads CTA: add_rms_norm's arithmetic, written once for its kernel and
// moe_router's. x_out may be x (each thread reads its elements before it writes them); the
// updated row is stored before the reduction, so that its writes drain during it. The caller
// synchronises before it reuses `reduction`.
template <int kPerThread, typename Weight, typename Out>
__device__ __forceinline__ void add_rms_norm_row(const float* x, const float* r, const Weight* w,
                                                 float eps, int d, float* x_out, Out y,
                                                 RmsShared& reduction) {
    float xs[kPerThread], rs[kPerThread];
    Weight ws[kPerThread];
    load_slots(x, d, xs);
    load_slots(r, d, rs);
    load_slots(w, d, ws);
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
        const int i = threadIdx.x + j * kNormThreads;
        if (i < d) {
            xs[j] += rs[j];
            x_out[i] = xs[j];
        }
    }
    const float scale = rms_scale_one(sum_of_squares(xs, d), d, eps, reduction);
    store_normed(xs, scale, ws, d, y);
}

// add_rms_norm_row's shared memory for up to kRows rows at once.
template <int kRows>
struct RmsRowsShared {
    double partial[kRows][kNormWarps];
    float scale[kRows];
};

// add_rms_norm_row for m <= kRows rows (a decode step's tokens, rows d apart), with every
// row's loads issued at once and one set of barriers for all, where row by row each norm was a
// round of L2 loads and two barriers in turn (the fused router at 4 tokens: 15.0 -> 13.8 us).
// Each row's sums are added in add_rms_norm_row's order (the same slots, shuffle trees and warp
// 0 total; warp t takes row t's), so its values are bitwise that function's. The norm weights
// are loaded once for all rows. The caller synchronises before it reuses `reduction`.
template <int kPerThread, int kRows, typename Weight, typename Out>
__device__ __forceinline__ void add_rms_norm_rows(const float* x, const float* r, const Weight* w,
                                                  float eps, int d, int m, float* x_out, Out y,
                                                  RmsRowsShared<kRows>& reduction) {
    float xs[kRows][kPerThread], rs[kRows][kPerThread];
    Weight ws[kPerThread];
#pragma unroll
    for (int t = 0; t < kRows; ++t) {
        if (t < m) {
            load_slots(x + t * d, d, xs[t]);
            load_slots(r + t * d, d, rs[t]);
        }
    }
    load_slots(w, d, ws);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
    for (int t = 0; t < kRows; ++t) {
        if (t < m) {
#pragma unroll
            for (int j = 0; j < kPerThread; ++j) {
                const int i = threadIdx.x + j * kNormThreads;
                if (i < d) {
                    xs[t][j] += rs[t][j];
                    x_out[t * d + i] = xs[t][j];
                }
            }
            const double sum = warp_sum(sum_of_squares(xs[t], d));
            if (lane == 0) reduction.partial[t][warp] = sum;
        }
    }
    __syncthreads();
    if (warp < m) {
        const double total = warp_sum(reduction.partial[warp][lane]);
        if (lane == 0) reduction.scale[warp] = inverse_rms(total, d, eps);
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kRows; ++t) {
        if (t < m) store_normed(xs[t], reduction.scale[t], ws, d, y + t * d);
    }
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
// token, not once per head: double-precision cos and sin are the expensive part), the cosines
// by threads 0 .. half - 1 and the sines by the next half, so that the two chains run side by
// side rather than one after the other in each thread: M2's decode attention, whose prologue
// waits on them, 9.19 / 9.21 -> 8.84 / 8.86 us a call in the decode graph (H200, A/B in one
// call, two rounds). The caller synchronises before rope_rotate reads them.
__device__ __forceinline__ void rope_angles(float position, const RopeFrequencies& f, int half,
                                            float* cosines, float* sines) {
    for (int index = threadIdx.x; index < 2 * half; index += blockDim.x) {
        const bool cosine = index < half;
        const int i = cosine ? index : index - half;
        const double angle = static_cast<double>(position * f.inv_freq[i]);
        if (cosine) {
            cosines[i] = static_cast<float>(cos(angle));
        } else {
            sines[i] = static_cast<float>(sin(angle));
        }
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
