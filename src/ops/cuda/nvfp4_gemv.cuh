// The NVFP4 weight-only GEMV family for decode (1 to 16 tokens): dense linear, MoE gate/up with
// SiLU, MoE down with the routed sum. FP4 weights dequantized in registers, activations f32
// rounded to bf16 for the tensor cores, f32 accumulation. Included by linear_cuda.cu,
// moe_cuda.cu and the benchmark ladder, so the benchmark times exactly these kernels.
//
// Partition (one CTA = 8 warps = one stripe of 16 output rows):
//
//        k groups of 64 columns  ->
//   +------+------+------+-- ... --+------+
//   |  w0  |  w1  |  w2  |   ...   |  w7  |   16 rows: warp w takes groups [w G/8, (w+1) G/8),
//   +------+------+------+-- ... --+------+   all of its loads of a chunk in flight at once;
//   partial sums meet in shared memory in a fixed order (deterministic, no atomics).
//
// The MoE down kernel instead gives warp w the routed slot w over the whole k, so the routed
// sum is the same fixed-order shared-memory reduction.
#pragma once

#include <cuda_runtime.h>

#include "ops/cuda/nvfp4_mma.cuh"

namespace fourbit::cuda::nvfp4 {

inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kGroupCols = 64;

// A tiled NVFP4 matrix on the device (ops/nvfp4_tiles.h): 32 uint4 of codes and 8 uint2 of
// scales per (stripe, group), stripe-major.
struct TilesView {
    const uint4* codes;
    const uint2* scales;
    int n;  // rows, a multiple of 16
    int k;  // columns, a multiple of 64
    float out_scale;  // global scale x 2^19 (kNvFp4TileExponent)
};

// One warp's share of a stripe: groups [begin, end), for up to 8 * kTokenTiles tokens of x
// (rows of x_stride floats; rows >= n_tokens read as zero). kChunk groups are loaded before the
// first is used: 16 bytes of codes and 8 of scales per lane and group.
template <int kTokenTiles, int kChunk>
__device__ __forceinline__ void stripe_partial(const uint4* codes, const uint2* scales, int begin,
                                               int end, const float* x, int x_stride,
                                               int n_tokens, float (&acc)[kTokenTiles][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int group0 = begin; group0 < end; group0 += kChunk) {
        uint4 q[kChunk];
        uint2 s[kChunk];
#pragma unroll
        for (int u = 0; u < kChunk; ++u) {
            if (group0 + u < end) {
                q[u] = load_streaming(codes + (group0 + u) * 32 + lane);
                s[u] = load_streaming(scales + (group0 + u) * 8 + g);
            }
        }
#pragma unroll
        for (int u = 0; u < kChunk; ++u) {
            if (group0 + u < end) {
                const uint32_t words[4] = {q[u].x, q[u].y, q[u].z, q[u].w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    uint32_t a[4];
                    nvfp4_tile_word_to_bf16x2(words[i], a);
                    const uint32_t scale_g = nvfp4_tile_scale_bf16x2(s[u].x, i);
                    const uint32_t scale_g8 = nvfp4_tile_scale_bf16x2(s[u].y, i);
                    a[0] = mul_bf16x2(a[0], scale_g);
                    a[1] = mul_bf16x2(a[1], scale_g8);
                    a[2] = mul_bf16x2(a[2], scale_g);
                    a[3] = mul_bf16x2(a[3], scale_g8);
                    const int k0 = (group0 + u) * kGroupCols + i * 16 + 2 * t;
#pragma unroll
                    for (int j = 0; j < kTokenTiles; ++j) {
                        const int token = 8 * j + g;
                        uint32_t b[2] = {0u, 0u};
                        if (token < n_tokens) {
                            const float* row = x + static_cast<int64_t>(token) * x_stride + k0;
                            const float2 low = __ldg(reinterpret_cast<const float2*>(row));
                            const float2 high = __ldg(reinterpret_cast<const float2*>(row + 8));
                            b[0] = pack_bf16x2(low.x, low.y);
                            b[1] = pack_bf16x2(high.x, high.y);
                        }
                        mma_bf16_16x8x16(acc[j], a, b);
                    }
                }
            }
        }
    }
}

// Each warp's accumulators into shared memory, [warp][register][lane].
template <int kTokenTiles>
__device__ __forceinline__ void store_partials(float (*partial)[kTokenTiles * 4][32],
                                               const float (&acc)[kTokenTiles][4]) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < kTokenTiles; ++j) {
#pragma unroll
        for (int c = 0; c < 4; ++c) partial[warp][j * 4 + c][lane] = acc[j][c];
    }
}

// y[token, row] = W x[token] for up to 8 * kTokenTiles tokens; grid = n / 16 stripes.
template <int kTokenTiles, int kChunk>
__global__ void __launch_bounds__(kThreads) linear_kernel(TilesView w, const float* x,
                                                          int n_tokens, float* y) {
    const int stripe = blockIdx.x, warp = threadIdx.x >> 5;
    const int groups = w.k / kGroupCols;
    float acc[kTokenTiles][4] = {};
    stripe_partial<kTokenTiles, kChunk>(w.codes + static_cast<int64_t>(stripe) * groups * 32,
                                        w.scales + static_cast<int64_t>(stripe) * groups * 8,
                                        warp * groups / kWarps, (warp + 1) * groups / kWarps, x,
                                        w.k, n_tokens, acc);
    __shared__ float partial[kWarps][kTokenTiles * 4][32];
    store_partials<kTokenTiles>(partial, acc);
    __syncthreads();
    for (int index = threadIdx.x; index < kTokenTiles * 4 * 32; index += kThreads) {
        const int reg = index / 32, lane = index % 32, j = reg / 4, c = reg % 4;
        float sum = 0.0f;
#pragma unroll
        for (int v = 0; v < kWarps; ++v) sum += partial[v][reg][lane];
        const int row = stripe * 16 + (lane >> 2) + (c >= 2 ? 8 : 0);
        const int token = 8 * j + 2 * (lane & 3) + (c & 1);
        if (token < n_tokens) y[static_cast<int64_t>(token) * w.n + row] = sum * w.out_scale;
    }
}

// Experts of one MoE layer, tiled and stacked: gate and up fused so that stripe s holds gate
// rows 8s..8s+7 (fragment rows g) and up rows 8s..8s+7 (rows g + 8), so each lane holds a gate
// and its up; down as is. out_scales [expert][3] = gate, up, down global scales x 2^19.
struct ExpertsView {
    const uint4* gate_up_codes;
    const uint2* gate_up_scales;
    const uint4* down_codes;
    const uint2* down_scales;
    const float* out_scales;
    int hidden;
    int intermediate;
};

// mid[p, i] = silu(gate_e h[p / top_k])_i * (up_e h[p / top_k])_i, e = ids[p], one routed
// slot p per grid row; grid = (2 intermediate / 16, n_tokens * top_k).
template <int kChunk>
__global__ void __launch_bounds__(kThreads) moe_gate_up_kernel(ExpertsView experts,
                                                               const int32_t* ids,
                                                               const float* h, int top_k,
                                                               float* mid) {
    const int stripe = blockIdx.x, slot = blockIdx.y, warp = threadIdx.x >> 5;
    const int expert = ids[slot];
    const int groups = experts.hidden / kGroupCols;
    const int64_t stripes = 2 * experts.intermediate / 16;
    const int64_t tile = static_cast<int64_t>(expert) * stripes + stripe;
    float acc[1][4] = {};
    stripe_partial<1, kChunk>(experts.gate_up_codes + tile * groups * 32,
                              experts.gate_up_scales + tile * groups * 8,
                              warp * groups / kWarps, (warp + 1) * groups / kWarps,
                              h + static_cast<int64_t>(slot / top_k) * experts.hidden,
                              experts.hidden, 1, acc);
    __shared__ float partial[kWarps][4][32];
    store_partials<1>(partial, acc);
    __syncthreads();
    if (threadIdx.x < 8) {
        // Token column 0 lives in lanes t = 0: lane 4g holds gate row g (d0) and up row g (d2).
        const int g = threadIdx.x;
        float gate = 0.0f, up = 0.0f;
#pragma unroll
        for (int v = 0; v < kWarps; ++v) {
            gate += partial[v][0][4 * g];
            up += partial[v][2][4 * g];
        }
        gate *= experts.out_scales[expert * 3 + 0];
        up *= experts.out_scales[expert * 3 + 1];
        mid[static_cast<int64_t>(slot) * experts.intermediate + stripe * 8 + g] =
            gate / (1.0f + expf(-gate)) * up;
    }
}

// out[t, row] = sum_j weights[t, j] (down_e mid[t top_k + j])_row, e = ids[t, j], in slot
// order; warp j computes slot j over the whole intermediate width. grid = (hidden / 16,
// n_tokens); top_k <= 8.
template <int kChunk>
__global__ void __launch_bounds__(kThreads) moe_down_kernel(ExpertsView experts,
                                                            const int32_t* ids,
                                                            const float* weights,
                                                            const float* mid, int top_k,
                                                            float* out) {
    const int stripe = blockIdx.x, token = blockIdx.y, warp = threadIdx.x >> 5;
    const int groups = experts.intermediate / kGroupCols;
    const int64_t stripes = experts.hidden / 16;
    float acc[1][4] = {};
    if (warp < top_k) {
        const int slot = token * top_k + warp;
        const int64_t tile = static_cast<int64_t>(ids[slot]) * stripes + stripe;
        stripe_partial<1, kChunk>(experts.down_codes + tile * groups * 32,
                                  experts.down_scales + tile * groups * 8, 0, groups,
                                  mid + static_cast<int64_t>(slot) * experts.intermediate,
                                  experts.intermediate, 1, acc);
    }
    __shared__ float partial[kWarps][4][32];
    store_partials<1>(partial, acc);
    __syncthreads();
    if (threadIdx.x < 16) {
        const int row = threadIdx.x, lane = 4 * (row % 8), reg = row < 8 ? 0 : 2;
        float sum = 0.0f;
        for (int j = 0; j < top_k; ++j) {
            const int slot = token * top_k + j;
            sum += weights[slot] * experts.out_scales[ids[slot] * 3 + 2] * partial[j][reg][lane];
        }
        out[static_cast<int64_t>(token) * experts.hidden + stripe * 16 + row] = sum;
    }
}

// The production configuration (bench/cuda_nvfp4_gemv_bench.cu sweeps kChunk).
inline constexpr int kChunk = 6;

// y = W x for any number of tokens, 16 at a time (each block of 16 re-reads W: a decode kernel,
// not a prefill GEMM).
inline void launch_linear(const TilesView& w, const float* x, int n_tokens, float* y,
                          cudaStream_t stream) {
    for (int t0 = 0; t0 < n_tokens; t0 += 16) {
        const int m = n_tokens - t0 < 16 ? n_tokens - t0 : 16;
        const float* xt = x + static_cast<int64_t>(t0) * w.k;
        float* yt = y + static_cast<int64_t>(t0) * w.n;
        if (m <= 8) {
            linear_kernel<1, kChunk><<<w.n / 16, kThreads, 0, stream>>>(w, xt, m, yt);
        } else {
            linear_kernel<2, kChunk><<<w.n / 16, kThreads, 0, stream>>>(w, xt, m, yt);
        }
    }
}

}  // namespace fourbit::cuda::nvfp4
