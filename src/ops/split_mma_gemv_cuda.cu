// split_mma_gemv (ops/cuda/split_mma_gemv.h): one warp a 16-row stripe of W over the whole k,
// in chunks of 32 kLoads columns. Lane (g, t) loads kLoads 16-byte pieces of rows g and g + 8
// (columns 8 kLoads t .. 8 kLoads t + 8 kLoads - 1 of the chunk) and of each part of token g's
// row at the same columns: each piece's 8 columns serve two k-tiles as the mma's k indices
// {2t, 2t + 1, 2t + 8, 2t + 9} (its first 4 columns for the first k-tile, the last 4 for the
// second). A dot product does not care in which order k comes as long as both operands agree,
// and so every operand is a coalesced 16-byte load with no shuffles or shared memory.
#include "ops/cuda/nvfp4_mma.cuh"
#include "ops/cuda/split_mma_gemv.h"
#include "ops/cuda/streaming_load.cuh"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kWarpsPerCta = 4;
constexpr int kParts = 3;

// kTokenTiles tiles of 8 tokens (grid y: passes of 8 kTokenTiles tokens); kLoads 16-byte loads
// a row and lane in a chunk.
template <int kTokenTiles, int kLoads>
__global__ void __launch_bounds__(kWarpsPerCta * 32)
    split_mma_gemv_kernel(const __nv_bfloat16* w, const __nv_bfloat16* parts, float* y, int m,
                          int n, int k) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int row0 = (blockIdx.x * kWarpsPerCta + (threadIdx.x >> 5)) * 16;
    if (row0 >= n) return;
    const int token0 = blockIdx.y * 8 * kTokenTiles;
    const int tokens = min(8 * kTokenTiles, m - token0);
    // Rows past n repeat the last one, tokens past m the last of the pass: their sums land in
    // D entries nobody stores.
    const uint4* low =
        reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(row0 + g, n - 1)) * k) +
        kLoads * t;
    const uint4* high =
        reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(row0 + g + 8, n - 1)) * k) +
        kLoads * t;
    const uint4* b[kTokenTiles][kParts];
#pragma unroll
    for (int j = 0; j < kTokenTiles; ++j) {
        const int64_t token = token0 + min(8 * j + g, tokens - 1);
#pragma unroll
        for (int p = 0; p < kParts; ++p) {
            b[j][p] = reinterpret_cast<const uint4*>(parts + (token * kParts + p) * k) + kLoads * t;
        }
    }
    float acc[kTokenTiles][4] = {};
    constexpr int kStep = 4 * kLoads;  // uint4 a row a chunk
    const int chunks = k / (32 * kLoads);
    uint4 next_low[kLoads], next_high[kLoads];
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
        next_low[l] = load_streaming(low + l);
        next_high[l] = load_streaming(high + l);
    }
    for (int c = 0; c < chunks; ++c) {
        uint4 a_low[kLoads], a_high[kLoads];
#pragma unroll
        for (int l = 0; l < kLoads; ++l) {
            a_low[l] = next_low[l];
            a_high[l] = next_high[l];
        }
        if (c + 1 < chunks) {  // the next chunk's weights in flight during this one's products
#pragma unroll
            for (int l = 0; l < kLoads; ++l) {
                next_low[l] = load_streaming(low + kStep * (c + 1) + l);
                next_high[l] = load_streaming(high + kStep * (c + 1) + l);
            }
        }
#pragma unroll
        for (int l = 0; l < kLoads; ++l) {
            const uint32_t tile0[4] = {a_low[l].x, a_high[l].x, a_low[l].y, a_high[l].y};
            const uint32_t tile1[4] = {a_low[l].z, a_high[l].z, a_low[l].w, a_high[l].w};
#pragma unroll
            for (int j = 0; j < kTokenTiles; ++j) {
#pragma unroll
                for (int p = 0; p < kParts; ++p) {
                    const uint4 v = __ldg(b[j][p] + kStep * c + l);
                    const uint32_t b0[2] = {v.x, v.y}, b1[2] = {v.z, v.w};
                    nvfp4::mma_bf16_16x8x16(acc[j], tile0, b0);
                    nvfp4::mma_bf16_16x8x16(acc[j], tile1, b1);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < kTokenTiles; ++j) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int row = row0 + g + (r >= 2 ? 8 : 0), token = 8 * j + 2 * t + (r & 1);
            if (row < n && token < tokens) {
                y[static_cast<int64_t>(token0 + token) * n + row] = acc[j][r];
            }
        }
    }
}

template <int kTokenTiles, int kLoads>
void launch(const __nv_bfloat16* w, const __nv_bfloat16* parts, float* y, int m, int n, int k,
            cudaStream_t stream) {
    const int stripes = (n + 15) / 16;
    const dim3 grid((stripes + kWarpsPerCta - 1) / kWarpsPerCta,
                    (m + 8 * kTokenTiles - 1) / (8 * kTokenTiles));
    split_mma_gemv_kernel<kTokenTiles, kLoads>
        <<<grid, kWarpsPerCta * 32, 0, stream>>>(w, parts, y, m, n, k);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void split_mma_gemv(const __nv_bfloat16* w, const __nv_bfloat16* parts, float* y, int m, int n,
                    int k, cudaStream_t stream) {
    // Up to 16 tokens, a lane's two pieces a row make each row's chunk a whole 128-byte line
    // (H200, M2's lm_head in the decode graph at 8 / 16 tokens: 519 / 516 us with one piece,
    // 301 / 381 with two: 4.1 TB/s at 8, the read bandwidth); at 32 the four tiles' products
    // bound it and one piece is faster (692 against 743 us).
    const bool whole_lines = k % 64 == 0;
    if (m <= 8) {
        return whole_lines ? launch<1, 2>(w, parts, y, m, n, k, stream)
                           : launch<1, 1>(w, parts, y, m, n, k, stream);
    }
    if (m <= 16) {
        return whole_lines ? launch<2, 2>(w, parts, y, m, n, k, stream)
                           : launch<2, 1>(w, parts, y, m, n, k, stream);
    }
    launch<4, 1>(w, parts, y, m, n, k, stream);
}

}  // namespace fourbit::cuda
