// linear on CUDA: dense weights at up to 64 tokens (decode: the router, the head, BF16 layers)
// through a GEMV that keeps x in f32 as the CPU does, so that router scores, and with them the
// choice of experts, agree with the reference (bf16 weights of many rows at 2+ tokens, the
// lm_head in batched decode: x split exactly in three bf16 parts on the tensor cores,
// ops/cuda/split_mma_gemv.h); beyond, small ones (routers) through a bf16 cuBLAS
// GEMM of x split exactly into three bf16 parts (so x stays whole there too), the rest through
// cuBLAS with x rounded to bf16 (bf16 weights) or in plain f32 (f32 weights). Tiled NVFP4
// through the weight-only GEMV family (ops/cuda/nvfp4_gemv.cuh) for steps of up to 32 tokens
// and the GEMM (ops/cuda/nvfp4_gemm.cuh) for more.
#include <cmath>
#include <optional>

#include "ops/cuda/cublas.h"
#include "ops/cuda/exact_dot.cuh"
#include "ops/cuda/nvfp4_gemm.cuh"
#include "ops/cuda/nvfp4_gemv.cuh"
#include "ops/cuda/round_bf16.h"
#include "ops/cuda/split_mma_gemv.h"
#include "ops/cuda/stream.h"
#include "ops/linear.h"
#include "ops/nvfp4_tiles.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

// One warp per weight row, 4 a CTA: M2's router (256 rows) spreads over 64 SMs rather than 32.
constexpr int kExactRowsPerBlock = 4;
constexpr int kExactTokensPerCta = 16;  // more tokens take more CTAs (grid y)
// Tokens a CTA where the rows are few (routers): a CTA per 2 tokens, so that M2's router (64
// CTAs of 4 rows) fills the card at batched decode instead of running its 8 tokens' products
// in turn on 64 SMs. H200, the router's GEMV in the 8-token decode graph: 14.3 us with 16
// tokens a CTA, 5.95 with 1, 4.86 with 2 (ab_h200_session23_router_tokens_linear_stripes.txt).
constexpr int kExactFewRowsTokensPerCta = 2;
// Where the f32-x GEMV runs: up to 64 tokens; beyond, re-reading the weights per 16 tokens costs
// more than cuBLAS (M2's router at 4096 tokens: ~1 ms a layer as GEMVs, H100). Weights up to
// this size keep x whole beyond too (split in three).
constexpr int64_t kExactGemvMaxTokens = 64;
constexpr int64_t kSplitGemmBytes = int64_t(8) << 20;
// Rows a warp of the exact GEMV at 2+ tokens where there are at least kExactMultiRowMinRows:
// its x loads bound it there, and four rows share them (H200: the lm_head at 8 tokens 1,289 ->
// 680 us, a BF16 q_proj at 16 tokens 87.5 -> 47.0). Fewer rows (routers) keep a row a warp,
// whose CTAs they need to fill the card.
constexpr int kExactMultiRows = 4;
constexpr int kExactMultiRowMinRows = 4096;
// From this many rows (a vocabulary: M2's lm_head has 200,064) bf16 weights at 2+ tokens go to
// the split-mma GEMV (ops/cuda/split_mma_gemv.h), whose warps each walk a whole 16-row stripe
// and so need many stripes to fill the card: a wave of its 4-warp CTAs is ~59,000 rows on 132
// SMs. H200: the lm_head at 8 / 16 / 32 tokens 612 / 1,350 / 2,626 -> 301 / 381 / 692 us, but
// a BF16 q_proj's 6,144 rows at 16 tokens 47 -> 88 us (96 CTAs).
constexpr int kSplitMmaMinRows = 65536;
// Up to 8 tokens (batched decode), a CTA's accumulators hold twice the rows a warp, one load
// of each in flight (H200, the lm_head at 8 tokens: 681 us with 4 rows, 608 with 8, 649 with 8
// and two loads each).
constexpr int kExactFewTokens = 8;
constexpr int kExactFewTokensRows = 8;
constexpr int kExactFewTokensUnroll = 1;

// y [m, n] = x [m, k] W^T, kTokens tokens a CTA (grid y), with x in f32 and f32 sums: each
// weight row is read once, 16 bytes per lane per step, for all the CTA's tokens; kRows rows a
// warp share each x load.
template <typename W, int kRows, int kUnroll, int kTokens>
__global__ void __launch_bounds__(32 * kExactRowsPerBlock)
    exact_gemv_kernel(const W* w, const float* x, float* y, int m_total, int n, int k) {
    const int lane = threadIdx.x & 31;
    x += static_cast<int64_t>(blockIdx.y) * kTokens * k;
    y += static_cast<int64_t>(blockIdx.y) * kTokens * n;
    const int m = min(kTokens, m_total - static_cast<int>(blockIdx.y) * kTokens);
    const int r0 = (blockIdx.x * kExactRowsPerBlock + (threadIdx.x >> 5)) * kRows;
    if (r0 >= n) return;
    const int valid = min(kRows, n - r0);  // a last warp may have fewer rows
    float sum[kTokens][kRows];
    exact_rows_dots<kRows, kTokens, kUnroll>(w + static_cast<int64_t>(r0) * k, k, valid, x, k, m, k,
                                             GlobalRows{}, sum);
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            if (t < m && r < valid && lane == 0) {
                y[static_cast<int64_t>(t) * n + r0 + r] = sum[t][r];
            }
        }
    }
}

// Launches the exact GEMV with kRows rows a warp and kTokens tokens a CTA.
template <int kRows, int kUnroll, int kTokens, typename W>
void launch_exact_gemv(const W* w, const float* x, float* y, int m, int n, int k) {
    const int warps = (n + kRows - 1) / kRows;
    const dim3 blocks(static_cast<unsigned>((warps + kExactRowsPerBlock - 1) / kExactRowsPerBlock),
                      static_cast<unsigned>((m + kTokens - 1) / kTokens));
    exact_gemv_kernel<W, kRows, kUnroll, kTokens>
        <<<blocks, 32 * kExactRowsPerBlock, 0, current_stream()>>>(w, x, y, m, n, k);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

// The exact GEMV, with several rows a warp where the rows are many (the lm_head) and so are
// the tokens.
template <typename W>
void exact_gemv(const W* w, const float* x, float* y, int m, int n, int k) {
    // Six 16-byte loads in flight per lane before their products: a bf16 row of 3,072 (M2's
    // router) in two rounds of loads instead of three.
    if (m == 1) return launch_exact_gemv<1, 6, kExactTokensPerCta>(w, x, y, m, n, k);
    if (n < kExactMultiRowMinRows) {
        return launch_exact_gemv<1, 6, kExactFewRowsTokensPerCta>(w, x, y, m, n, k);
    }
    if (m <= kExactFewTokens) {
        return launch_exact_gemv<kExactFewTokensRows, kExactFewTokensUnroll, kExactFewTokens>(
            w, x, y, m, n, k);
    }
    launch_exact_gemv<kExactMultiRows, 2, kExactTokensPerCta>(w, x, y, m, n, k);
}

// y [m, n] = x [m, k] W^T with x f32 on the device and W [n, k] dense, row-major. cuBLAS is
// column-major: there W is a k x n matrix (so op T), x a k x m one and y an n x m one, all with
// their row lengths as leading dimensions.
void linear_dense(const float* x, int m, int k, const LinearWeight& weight, Tensor& y) {
    const int n = static_cast<int>(weight.rows());
    // Rows of both start 16-byte aligned when k is a multiple of 8 (bf16) or 4 (f32).
    const bool aligned = k % (weight.weight.dtype() == DType::bf16 ? 8 : 4) == 0 &&
                         reinterpret_cast<uintptr_t>(x) % 16 == 0;
    if (aligned && m <= kExactGemvMaxTokens) {
        if (weight.weight.dtype() == DType::bf16 && m >= 2 && n >= kSplitMmaMinRows &&
            k % 32 == 0) {
            // A head's rows at 2+ tokens (batched decode): x split in three bf16 parts on the
            // tensor cores instead of the FMA GEMV.
            Scratch parts(static_cast<size_t>(m) * 3 * k * 2);
            split_to_bf16x3(x, m, k, parts.as<__nv_bfloat16>(), current_stream());
            split_mma_gemv(weight.weight.data<__nv_bfloat16>(), parts.as<__nv_bfloat16>(),
                           y.data<float>(), m, n, k, current_stream());
            return;
        }
        if (weight.weight.dtype() == DType::bf16) {
            exact_gemv(weight.weight.data<__nv_bfloat16>(), x, y.data<float>(), m, n, k);
        } else {
            exact_gemv(weight.weight.data<float>(), x, y.data<float>(), m, n, k);
        }
        return;
    }
    const float alpha = 1.0f, beta = 0.0f;
    cublasHandle_t handle = cublas_handle();
    if (weight.weight.dtype() == DType::f32) {
        FOURBIT_CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                         weight.weight.data<float>(), k, x, k, &beta,
                                         y.data<float>(), n));
        return;
    }
    if (static_cast<int64_t>(weight.weight.size_bytes()) <= kSplitGemmBytes) {
        // x = hi + mid + lo exactly, each product with the bf16 weight exact in f32: one bf16
        // GEMM over k three times as long keeps x whole on the tensor cores (M2's router at
        // 4,096 tokens: an f32 cuBLAS GEMM of the widened weight took ~190 us a layer, ncu, H200).
        Scratch parts(static_cast<size_t>(m) * 3 * k * 2);
        Scratch repeated(static_cast<size_t>(n) * 3 * k * 2);
        split_to_bf16x3(x, m, k, parts.as<__nv_bfloat16>(), current_stream());
        repeat_bf16x3(weight.weight.data<__nv_bfloat16>(), n, k, repeated.as<__nv_bfloat16>(),
                      current_stream());
        FOURBIT_CUBLAS_CHECK(cublasGemmEx(
            handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, 3 * k, &alpha, repeated.as<uint16_t>(),
            CUDA_R_16BF, 3 * k, parts.as<uint16_t>(), CUDA_R_16BF, 3 * k, &beta, y.data<float>(),
            CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
    }
    const int64_t count = static_cast<int64_t>(m) * k;
    Scratch x_bf16(static_cast<size_t>(count) * 2);
    round_to_bf16(x, x_bf16.as<__nv_bfloat16>(), count, current_stream());
    FOURBIT_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                      weight.weight.data<uint16_t>(), CUDA_R_16BF, k,
                                      x_bf16.as<uint16_t>(), CUDA_R_16BF, k, &beta,
                                      y.data<float>(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
}

nvfp4::TilesView tiles_of(const LinearWeight& weight) {
    return {weight.weight.data<uint4>(), weight.block_scale.data<uint2>(),
            static_cast<int>(weight.rows()), static_cast<int>(weight.cols())};
}

// The decode GEMV up to 32 tokens, the GEMM from 33 (nvfp4::kGemmMinTokens); x f32 or bf16.
template <typename X>
void linear_tiles(const X* x, int n_tokens, const nvfp4::TilesView& tiles,
                  const nvfp4::RowParts& y) {
    if (n_tokens >= nvfp4::kGemmMinTokens) return nvfp4::linear_gemm(tiles, x, n_tokens, y);
    FOURBIT_CUDA_CHECK(nvfp4::launch_linear(tiles, x, n_tokens, y, current_stream()));
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void linear_tiles(const Tensor& x, const nvfp4::TilesView& tiles, const nvfp4::RowParts& y) {
    with_rows(x,
              [&](const auto* rows) { linear_tiles(rows, static_cast<int>(x.dim(0)), tiles, y); });
}

}  // namespace

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    if (x.dim(0) == 0) return;
    DeviceScope scope(x.device().index);
    if (weight.format() == WeightFormat::dense) {
        // Dense weights multiply f32 activations (exactly, in the GEMVs): bf16 ones are widened.
        std::optional<Scratch> widened;
        return linear_dense(f32_rows(x, widened), static_cast<int>(x.dim(0)),
                            static_cast<int>(x.dim(1)), weight, y);
    }
    linear_tiles(x, tiles_of(weight),
                 nvfp4::one_part(y.data<float>(), static_cast<int>(weight.rows()),
                                 std::ldexp(weight.global_scale, kNvFp4TileExponent)));
}

void linear_stacked(const Tensor& x, const StackedLinear& stacked, const std::vector<Tensor*>& ys) {
    if (x.dim(0) == 0) return;
    DeviceScope scope(x.device().index);
    nvfp4::RowParts parts{};
    parts.count = static_cast<int>(ys.size());
    int end = 0;
    for (int p = 0; p < parts.count; ++p) {
        end += static_cast<int>(stacked.part_rows[p]);
        parts.out[p] = ys[p]->data<float>();
        parts.end[p] = end;
        parts.scale[p] = std::ldexp(stacked.part_global_scales[p], kNvFp4TileExponent);
    }
    linear_tiles(x, tiles_of(stacked.weight), parts);
}

}  // namespace fourbit::cuda
