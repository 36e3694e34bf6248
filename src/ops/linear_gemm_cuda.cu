// The NVFP4 linear for many tokens (prefill projections) through the tiled GEMM
// (ops/cuda/nvfp4_gemm.cuh): x rounded to bf16 once, then one CTA per (row block, token block).
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/nvfp4_gemm.cuh"
#include "ops/cuda/round_bf16.h"
#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda::nvfp4 {

namespace {

// 128 rows x 128 tokens in 8 warps of 32 x 64 where the grid still fills the card twice over
// (H100, 4-layer M2.7 slice, pp4096: q/k/v 3.1 ms and o 2.5 against 4.4 and 3.4 for warps of
// 64 x 32); 64 x 64 in 4 warps for the narrow ones and short prompts.
using LargeTile = gemm::Shape<4, 2, 2, 8>;
using SmallTile = gemm::Shape<2, 2, 2, 4>;

template <class S>
__global__ void __launch_bounds__(S::kThreads)
    linear_gemm_kernel(TilesView w, const __nv_bfloat16* x, int n_tokens, RowParts y) {
    extern __shared__ __align__(16) unsigned char shared[];
    auto* stages = reinterpret_cast<gemm::Stage<S>*>(shared);
    const int first_token = blockIdx.y * S::kTokens;
    const gemm::StripeRange range{w.codes, w.scales, static_cast<int>(blockIdx.x) * S::kStripes,
                                  w.n / 16, w.k / gemm::kGroupCols};
    const __nv_bfloat16* rows[S::kRowChunks];
    gemm::thread_rows<S>(rows, [&](int r) -> const __nv_bfloat16* {
        const int token = first_token + r;
        return token < n_tokens ? x + static_cast<int64_t>(token) * w.k : nullptr;
    });
    float acc[S::kMTiles][S::kNTiles][4] = {};
    gemm::multiply<S>(stages, range, rows, n_tokens - first_token, acc);
    gemm::for_each_output<S>(range, n_tokens - first_token, acc,
                             [&](int stripe, int row, int column, float low, float high) {
        y.store(first_token + column, stripe * 16 + row, low);
        y.store(first_token + column, stripe * 16 + row + 8, high);
    });
}

template <class S>
void launch(const TilesView& w, const __nv_bfloat16* x, int n_tokens, const RowParts& y,
            cudaStream_t stream) {
    constexpr size_t bytes = gemm::shared_bytes<S>();
    FOURBIT_CUDA_CHECK(opt_in_shared_memory(linear_gemm_kernel<S>, bytes));
    const dim3 grid((w.n / 16 + S::kStripes - 1) / S::kStripes,
                    (n_tokens + S::kTokens - 1) / S::kTokens);
    linear_gemm_kernel<S><<<grid, S::kThreads, bytes, stream>>>(w, x, n_tokens, y);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void linear_gemm(const TilesView& w, const __nv_bfloat16* x, int n_tokens, const RowParts& y) {
    cudaStream_t stream = current_stream();
    const int64_t large_ctas = static_cast<int64_t>((w.n / 16 + LargeTile::kStripes - 1) / LargeTile::kStripes) *
                               ((n_tokens + LargeTile::kTokens - 1) / LargeTile::kTokens);
    if (large_ctas >= 2 * current_device_attribute(cudaDevAttrMultiProcessorCount)) {
        launch<LargeTile>(w, x, n_tokens, y, stream);
    } else {
        launch<SmallTile>(w, x, n_tokens, y, stream);
    }
}

void linear_gemm(const TilesView& w, const float* x, int n_tokens, const RowParts& y) {
    const int64_t count = static_cast<int64_t>(n_tokens) * w.k;
    Scratch x_bf16(static_cast<size_t>(count) * sizeof(__nv_bfloat16));
    round_to_bf16(x, x_bf16.as<__nv_bfloat16>(), count, current_stream());
    linear_gemm(w, x_bf16.as<__nv_bfloat16>(), n_tokens, y);
}

}  // namespace fourbit::cuda::nvfp4
