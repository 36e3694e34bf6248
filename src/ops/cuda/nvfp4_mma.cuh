// Device helpers of the NVFP4 weight-only kernels: the tile layout's loads, bf16x2 arithmetic and
// the mma itself. The layout and its dequantization (shared with host tests) are in
// ops/nvfp4_tiles.h; every helper says why it is written the way it is.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/streaming_load.cuh"
#include "ops/nvfp4_tiles.h"

namespace fourbit::cuda::nvfp4 {

// A tiled NVFP4 matrix on the device (ops/nvfp4_tiles.h): 32 uint4 of codes and 8 uint2 of
// scales per (stripe, group), stripe-major.
struct TilesView {
    const uint4* codes;
    const uint2* scales;
    int n;  // rows, a multiple of 16
    int k;  // columns, a multiple of 64
};

// Where the output rows of a tiled matrix go: up to three stacked parts (an attention layer's
// q, k and v, ops/linear.h's StackedLinear), each with its own output [tokens, part rows] and
// global scale; a plain matrix is one part.
struct RowParts {
    float* out[3];
    int end[3];      // the row after part i (ascending; the last one's is n)
    float scale[3];  // the part's global scale x 2^19 (kNvFp4TileExponent)
    int count;

    // out = sum x the scale of row `row`'s part, at (token, the row within its part).
    __device__ __forceinline__ void store(int token, int row, float sum) const {
        const int part = count > 1 && row >= end[0] ? (count > 2 && row >= end[1] ? 2 : 1) : 0;
        const int begin = part == 0 ? 0 : part == 1 ? end[0] : end[1];
        const int width = (part == 0 ? end[0] : part == 1 ? end[1] : end[2]) - begin;
        float* y = part == 0 ? out[0] : part == 1 ? out[1] : out[2];
        const float s = part == 0 ? scale[0] : part == 1 ? scale[1] : scale[2];
        y[static_cast<int64_t>(token) * width + row - begin] = sum * s;
    }

    // The same parts `tokens` tokens further on (a later block of tokens).
    RowParts after_tokens(int tokens) const {
        RowParts moved = *this;
        for (int p = 0; p < count; ++p) {
            moved.out[p] += static_cast<int64_t>(tokens) * (end[p] - (p == 0 ? 0 : end[p - 1]));
        }
        return moved;
    }
};

// One part: y [tokens, n] with the global scale x 2^19 `scale`.
inline RowParts one_part(float* y, int n, float scale) {
    return RowParts{{y, nullptr, nullptr}, {n, n, n}, {scale, 0.0f, 0.0f}, 1};
}

// A fragment's rows scaled: a[0], a[2] (row g) x {rows.low, rows.low} and a[1], a[3] (row g + 8)
// x {rows.high, rows.high}, bf16x2, exact here (see nvfp4_tile_scale_bf16x2; PTX mul.bf16x2
// keeps subnormal inputs, having no flush-to-zero form, which code 1 needs). ptxas folds the
// half-word splats into the multiplies' operand selectors (HMUL2 ... R.H0_H0), so one register
// of the two rows' scales serves all four.
__device__ __forceinline__ void scale_rows(uint32_t (&a)[4], uint32_t rows) {
    asm("{ .reg .b16 low, high; .reg .b32 lows, highs;\n"
        "  mov.b32 {low, high}, %4; mov.b32 lows, {low, low}; mov.b32 highs, {high, high};\n"
        "  mul.rn.bf16x2 %0, %0, lows; mul.rn.bf16x2 %1, %1, highs;\n"
        "  mul.rn.bf16x2 %2, %2, lows; mul.rn.bf16x2 %3, %3, highs; }"
        : "+r"(a[0]), "+r"(a[1]), "+r"(a[2]), "+r"(a[3])
        : "r"(rows));
}

// k-tile i of a lane's tile words: its code word and its uint2 of scales -> the A fragment, each
// element e2m1 x scale x 2^-19 in bf16 (ops/nvfp4_tiles.h). Pairs 0 and 2 are row g, 1 and 3
// row g + 8.
__device__ __forceinline__ void dequantize_k_tile(uint32_t word, uint2 scales, int i,
                                                  uint32_t (&a)[4]) {
    nvfp4_tile_word_to_bf16x2(word, a);
    scale_rows(a, nvfp4_tile_scale_bf16x2(i < 2 ? scales.x : scales.y, i & 1));
}

// Two f32 activations -> one bf16x2 register, the first in the low half (the lower k index).
__device__ __forceinline__ uint32_t pack_bf16x2(float low, float high) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(low, high);
    return *reinterpret_cast<const uint32_t*>(&v);
}

// D = A x B + D on the tensor cores: A 16x16 bf16 (weights: 16 rows of a stripe, one k-tile),
// B 16x8 bf16 (activations: a k-tile of up to 8 tokens), D 16x8 f32. Lane l = 4g + t holds
// D rows g and g+8, token columns 2t and 2t+1: d0 (g, 2t), d1 (g, 2t+1), d2 (g+8, 2t), d3.
__device__ __forceinline__ void mma_bf16_16x8x16(float (&d)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2]) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Four 8x8 bf16 matrices from shared memory, one 16-byte row address per lane (lanes 8i .. 8i + 7:
// matrix i): lane 4g + t receives word t of row g of each, i.e. a fragment of the mma.
__device__ __forceinline__ void load_matrices(uint32_t (&words)[4], const void* row) {
    const unsigned address = shared_address(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(words[0]), "=r"(words[1]), "=r"(words[2]), "=r"(words[3])
                 : "r"(address));
}

// Two 8x8 bf16 matrices from shared memory, lanes 0-7 matrix 0's row addresses and lanes 8-15
// matrix 1's (16 bytes each; lanes 16-31 give none): lane 4g + t receives word t of row g of each.
__device__ __forceinline__ void load_two_matrices(uint32_t (&words)[2], unsigned row_address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(words[0]), "=r"(words[1])
                 : "r"(row_address));
}

}  // namespace fourbit::cuda::nvfp4
