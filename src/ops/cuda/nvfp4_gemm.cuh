// The NVFP4 weight-only GEMM for many tokens (prefill chunks): the decode GEMVs
// (nvfp4_gemv.cuh) re-read and re-dequantize the weights for every 8 or 16 tokens, which at
// thousands of tokens makes them memory- and ALU-bound far below the tensor cores' rate. Here a
// CTA owns a tile of kRows weight rows x kTokens tokens and walks k in groups of 64 columns
// through a kStages-deep cp.async pipeline in shared memory: the group's FP4 tiles (the layout
// of ops/nvfp4_tiles.h, so the same dequantization as the GEMVs) and the tokens' bf16
// activation rows, gathered by row pointer (the MoE's slots) and zero-filled past the tile's
// tokens. Each warp dequantizes its stripes' A fragments once per k-tile and reuses them for
// all its token tiles: weights are read once per kTokens tokens.
//
//                 kTokens tokens (warp_n = 0 .. kWarpsN-1, kNTiles mma columns of 8 each)
//               +------------+------------+
//   kRows rows  | warp (0,0) | warp (0,1) |   warp (m, n): kMTiles stripes of 16 rows
//   (kWarpsM x  +------------+------------+   x kNTiles * 8 tokens, f32 accumulators
//   kMTiles x   | warp (1,0) | warp (1,1) |   in registers over the whole k
//   16)         +------------+------------+
//
// Numerics are the GEMVs': activations rounded to bf16 (here once, before the kernel), exact
// dequantized weights, f32 accumulation (one warp sums a row over all k, in k order).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/nvfp4_mma.cuh"

namespace fourbit::cuda::nvfp4::gemm {

inline constexpr int kGroupCols = 64;   // k per pipeline stage: one tile group
inline constexpr int kStages = 4;       // groups in flight: covers ~3 L2 latencies of math
// Staged activation row: 64 bf16 + 8 of padding = 144 bytes, so the 8 rows a fragment read
// touches start 4 banks apart and its 32 lanes hit 32 different banks.
inline constexpr int kRowStride = kGroupCols + 8;

template <int kWarpsM_, int kWarpsN_, int kMTiles_, int kNTiles_>
struct Shape {
    static constexpr int kWarpsM = kWarpsM_, kWarpsN = kWarpsN_;
    static constexpr int kMTiles = kMTiles_, kNTiles = kNTiles_;
    static constexpr int kThreads = kWarpsM * kWarpsN * 32;
    static constexpr int kStripes = kWarpsM * kMTiles;  // 16-row stripes per CTA
    static constexpr int kRows = kStripes * 16;
    static constexpr int kTokens = kWarpsN * kNTiles * 8;
    // 16-byte activation chunks per thread per stage: kTokens rows of 8 chunks.
    static constexpr int kRowChunks = kTokens * 8 / kThreads;
    static_assert(kTokens * 8 % kThreads == 0, "whole rows per thread pass");
    static_assert(kNTiles % 2 == 0, "B fragments come by pairs of token tiles (ldmatrix.x4)");
};

// One pipeline stage: the group's codes and scales of kStripes stripes, and kTokens rows.
template <class S>
struct Stage {
    uint4 codes[S::kStripes][32];
    uint2 scales[S::kStripes][8];
    __nv_bfloat16 x[S::kTokens][kRowStride];
};

template <class S>
inline constexpr size_t shared_bytes() {
    return sizeof(Stage<S>) * kStages;
}

// The matrix this CTA multiplies: stripe-major tiles starting at its first stripe.
struct StripeRange {
    const uint4* codes;   // tiles of stripe 0 of the matrix (an expert's, for the MoE)
    const uint2* scales;
    int first_stripe;     // this CTA's first stripe
    int n_stripes;        // the matrix's stripes: later ones are zero-filled, never stored
    int groups;           // k / 64
};

// Stage `group` of the CTA's stripes and rows into `stage`. rows[j] is this thread's j-th
// activation row (rows thread / 8 + j kThreads / 8, chunk thread % 8), null past the tokens.
template <class S>
__device__ __forceinline__ void load_stage(Stage<S>& stage, const StripeRange& w, int group,
                                           const __nv_bfloat16* const (&rows)[S::kRowChunks]) {
    constexpr int kChunksPerStripe = 32 + 4;  // 512 bytes of codes, 64 of scales
    for (int index = threadIdx.x; index < S::kStripes * kChunksPerStripe; index += S::kThreads) {
        const int s = index / kChunksPerStripe, c = index % kChunksPerStripe;
        const int stripe = w.first_stripe + s;
        const bool inside = stripe < w.n_stripes;
        const int64_t tile = static_cast<int64_t>(inside ? stripe : 0) * w.groups + group;
        if (c < 32) {
            copy_async_16(&stage.codes[s][c], w.codes + tile * 32 + c, inside);
        } else {
            copy_async_16(reinterpret_cast<uint4*>(stage.scales[s]) + (c - 32),
                          reinterpret_cast<const uint4*>(w.scales + tile * 8) + (c - 32), inside);
        }
    }
    const int chunk = threadIdx.x % 8;
#pragma unroll
    for (int j = 0; j < S::kRowChunks; ++j) {
        const int row = threadIdx.x / 8 + j * (S::kThreads / 8);
        const __nv_bfloat16* source = rows[j];
        // Past the tokens: any valid address, 0 bytes read.
        const void* from = source != nullptr
                               ? static_cast<const void*>(source + group * kGroupCols + chunk * 8)
                               : static_cast<const void*>(w.codes);
        copy_async_16(&stage.x[row][chunk * 8], from, source != nullptr);
    }
}

// acc[m][j] += (stripe warp_m kMTiles + m) x (tokens warp_n kNTiles 8 + 8 j ..) over all of k,
// for the tile's first `columns` tokens (the columns of a partly filled tile past them are left
// alone: a warp with none issues no math, so the other warps on its scheduler take its slots; a
// grouped MoE fills its tiles to ~70% on average). Lane l = 4g + t ends with acc[m][j] = {(row g,
// token 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1)} of its stripe and token tile. Every
// thread of the CTA must call it.
template <class S>
__device__ __forceinline__ void multiply(Stage<S>* stages, const StripeRange& w,
                                         const __nv_bfloat16* const (&rows)[S::kRowChunks], int columns,
                                         float (&acc)[S::kMTiles][S::kNTiles][4]) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2;
    const int warp_m = warp % S::kWarpsM, warp_n = warp / S::kWarpsM;
    const int first_column = warp_n * S::kNTiles * 8;
    // ldmatrix rows of a pair of token tiles, lane 8q + r: token r of tile q / 2, columns
    // (q % 2) 8 .. + 7 of the k-tile, i.e. b[j][0], b[j][1], b[j + 1][0], b[j + 1][1].
    const int b_row = first_column + 8 * (lane >> 4) + (lane & 7), b_column = 8 * ((lane >> 3) & 1);
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < w.groups) load_stage<S>(stages[s], w, s, rows);
        commit_async_copies();
    }
    for (int group = 0; group < w.groups; ++group) {
        wait_async_copies<kStages - 2>();
        // Everyone's copies of `group` landed, and everyone is done with the stage refilled next.
        __syncthreads();
        const int ahead = group + kStages - 1;
        if (ahead < w.groups) load_stage<S>(stages[ahead % kStages], w, ahead, rows);
        commit_async_copies();
        if (first_column >= columns) continue;  // the same in the whole warp
        const Stage<S>& stage = stages[group % kStages];
        uint4 codes[S::kMTiles];
        uint2 scales[S::kMTiles];
#pragma unroll
        for (int m = 0; m < S::kMTiles; ++m) {
            codes[m] = stage.codes[warp_m * S::kMTiles + m][lane];
            scales[m] = stage.scales[warp_m * S::kMTiles + m][g];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            uint32_t b[S::kNTiles][2];
#pragma unroll
            for (int j = 0; j < S::kNTiles; j += 2) {
                uint32_t words[4];
                load_matrices(words, &stage.x[b_row + 8 * j][i * 16 + b_column]);
                b[j][0] = words[0];
                b[j][1] = words[1];
                b[j + 1][0] = words[2];
                b[j + 1][1] = words[3];
            }
#pragma unroll
            for (int m = 0; m < S::kMTiles; ++m) {
                const uint32_t word = i == 0   ? codes[m].x
                                      : i == 1 ? codes[m].y
                                      : i == 2 ? codes[m].z
                                               : codes[m].w;
                uint32_t a[4];
                dequantize_k_tile(word, scales[m], i, a);
#pragma unroll
                for (int j = 0; j < S::kNTiles; ++j) {
                    if (first_column + 8 * j < columns) mma_bf16_16x8x16(acc[m][j], a, b[j]);
                }
            }
        }
    }
}

// Calls out(stripe, row g of it, first token column of the pair, acc[4]) for each of the
// thread's fragments (see multiply for what the four values are).
template <class S, class Out>
__device__ __forceinline__ void for_each_fragment(int first_stripe,
                                                  const float (&acc)[S::kMTiles][S::kNTiles][4],
                                                  Out out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warp_m = warp % S::kWarpsM, warp_n = warp / S::kWarpsM;
#pragma unroll
    for (int m = 0; m < S::kMTiles; ++m) {
#pragma unroll
        for (int j = 0; j < S::kNTiles; ++j) {
            out(first_stripe + warp_m * S::kMTiles + m, lane >> 2,
                (warp_n * S::kNTiles + j) * 8 + 2 * (lane & 3), acc[m][j]);
        }
    }
}

// Calls out(stripe, row g, column, low, high) for each of the thread's outputs whose stripe is
// inside the matrix and whose column is below `columns` (the tile's tokens): low is (row g of
// the stripe, column), high (row g + 8, column).
template <class S, class Out>
__device__ __forceinline__ void for_each_output(const StripeRange& range, int columns,
                                                const float (&acc)[S::kMTiles][S::kNTiles][4],
                                                Out out) {
    for_each_fragment<S>(range.first_stripe, acc,
                         [&](int stripe, int row, int column, const float(&v)[4]) {
        if (stripe >= range.n_stripes) return;
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            if (column + c < columns) out(stripe, row, column + c, v[c], v[2 + c]);
        }
    });
}

// This thread's activation rows for a tile whose row r is row_of(r) (null past the tokens).
template <class S, class RowOf>
__device__ __forceinline__ void thread_rows(const __nv_bfloat16* (&rows)[S::kRowChunks],
                                            RowOf row_of) {
#pragma unroll
    for (int j = 0; j < S::kRowChunks; ++j) rows[j] = row_of(threadIdx.x / 8 + j * (S::kThreads / 8));
}

}  // namespace fourbit::cuda::nvfp4::gemm

namespace fourbit::cuda::nvfp4 {

// From this many tokens a dense NVFP4 linear runs as the GEMM, below as the decode GEMV, which
// reads the weights once per 16 tokens. H200, 8-layer M2.7 slice, decode at batch 48: from 33
// 4,790 -> 4,895 tok/s (and from 65 before); from 17 batches of 24 and 32 lost 3-4%.
inline constexpr int kGemmMinTokens = 33;

// y = x [n_tokens, w.k] W^T through the GEMM (y: the rows' parts), on the current stream
// (linear_gemm_cuda.cu): x f32, rounded to bf16 first, or bf16 rows a producer rounded.
// Throws CudaError on a failed launch.
void linear_gemm(const TilesView& w, const float* x, int n_tokens, const RowParts& y);
void linear_gemm(const TilesView& w, const __nv_bfloat16* x, int n_tokens, const RowParts& y);

}  // namespace fourbit::cuda::nvfp4
