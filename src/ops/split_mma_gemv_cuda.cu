// split_mma_gemv (ops/cuda/split_mma_gemv.h): one warp a 16-row stripe of W over the whole k,
// in chunks of 32 columns. Lane (g, t) loads 16 bytes of rows g and g + 8 (columns 8t .. 8t + 7
// of the chunk) and 16 bytes of each part of token g's row at the same columns: a chunk's two
// k-tiles take those 8 columns as the mma's k indices {2t, 2t + 1, 2t + 8, 2t + 9} of k-tile 0
// (columns 8t .. 8t + 3) and of k-tile 1 (8t + 4 .. 8t + 7). A dot product does not care in
// which order k comes as long as both operands agree, and so every operand is one coalesced
// 16-byte load with no shuffles or shared memory.
#include "ops/cuda/nvfp4_mma.cuh"
#include "ops/cuda/split_mma_gemv.h"
#include "ops/cuda/streaming_load.cuh"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kWarpsPerCta = 4;
constexpr int kParts = 3;

// kTokenTiles tiles of 8 tokens (grid y: passes of 8 kTokenTiles tokens).
template <int kTokenTiles>
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
        reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(row0 + g, n - 1)) * k) + t;
    const uint4* high =
        reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(row0 + g + 8, n - 1)) * k) + t;
    const uint4* b[kTokenTiles][kParts];
#pragma unroll
    for (int j = 0; j < kTokenTiles; ++j) {
        const int64_t token = token0 + min(8 * j + g, tokens - 1);
#pragma unroll
        for (int p = 0; p < kParts; ++p) {
            b[j][p] = reinterpret_cast<const uint4*>(parts + (token * kParts + p) * k) + t;
        }
    }
    float acc[kTokenTiles][4] = {};
    const int chunks = k / 32;  // a chunk: 4 uint4 a row
    uint4 next_low = load_streaming(low), next_high = load_streaming(high);
    for (int c = 0; c < chunks; ++c) {
        const uint4 a_low = next_low, a_high = next_high;
        if (c + 1 < chunks) {  // the next chunk's weights in flight during this one's products
            next_low = load_streaming(low + 4 * (c + 1));
            next_high = load_streaming(high + 4 * (c + 1));
        }
        const uint32_t tile0[4] = {a_low.x, a_high.x, a_low.y, a_high.y};
        const uint32_t tile1[4] = {a_low.z, a_high.z, a_low.w, a_high.w};
#pragma unroll
        for (int j = 0; j < kTokenTiles; ++j) {
#pragma unroll
            for (int p = 0; p < kParts; ++p) {
                const uint4 v = __ldg(b[j][p] + 4 * c);
                const uint32_t b0[2] = {v.x, v.y}, b1[2] = {v.z, v.w};
                nvfp4::mma_bf16_16x8x16(acc[j], tile0, b0);
                nvfp4::mma_bf16_16x8x16(acc[j], tile1, b1);
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

template <int kTokenTiles>
void launch(const __nv_bfloat16* w, const __nv_bfloat16* parts, float* y, int m, int n, int k,
            cudaStream_t stream) {
    const int stripes = (n + 15) / 16;
    const dim3 grid((stripes + kWarpsPerCta - 1) / kWarpsPerCta,
                    (m + 8 * kTokenTiles - 1) / (8 * kTokenTiles));
    split_mma_gemv_kernel<kTokenTiles>
        <<<grid, kWarpsPerCta * 32, 0, stream>>>(w, parts, y, m, n, k);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void split_mma_gemv(const __nv_bfloat16* w, const __nv_bfloat16* parts, float* y, int m, int n,
                    int k, cudaStream_t stream) {
    if (m <= 8) return launch<1>(w, parts, y, m, n, k, stream);
    if (m <= 16) return launch<2>(w, parts, y, m, n, k, stream);
    launch<4>(w, parts, y, m, n, k, stream);
}

}  // namespace fourbit::cuda
