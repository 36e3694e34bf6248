// CPU linear. Decode (a few tokens) streams each weight row once through a fused
// convert-and-dot; prefill converts a panel of rows to f32 once and reuses it across a chunk
// of tokens in register tiles. Rows are split across OpenMP threads.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "nvfp4/quantize.h"
#include "ops/cpu/kernels.h"
#include "ops/linear.h"

namespace fourbit::cpu {

namespace {

constexpr int kPanelRows = 16;
constexpr int kTokenChunk = 64;
// Below this many tokens the weight-streaming path wins: converting a panel costs as much as
// using it once.
constexpr int64_t kStreamingMaxTokens = 2;
// NVFP4 decodes its codes once per row for up to 8 tokens, so streaming wins for longer.
constexpr int64_t kNvFp4StreamingMaxTokens = 8;
// Products smaller than this many multiply-adds run on one thread: waking the others costs
// more than it saves (and many small test processes at once would oversubscribe the cores).
constexpr int64_t kParallelMinMacs = int64_t(1) << 17;

// Converts rows [row_begin, row_begin + rows) of W to f32 in `out` ([rows, k]).
void weight_rows_to_f32(const LinearWeight& weight, int64_t row_begin, int rows, float* out,
                        const Kernels& kernels) {
    const Tensor& w = weight.weight;
    const int64_t k = weight.cols();
    switch (w.dtype()) {
        case DType::f32:
            std::copy_n(w.data<float>() + row_begin * k, rows * k, out);
            return;
        case DType::bf16:
            kernels.bf16_to_f32(w.data<uint16_t>() + row_begin * k, out, rows * k);
            return;
        case DType::f8_e4m3: {
            const float* scales = weight.block_scale.data<float>();
            const int64_t scale_cols = weight.block_scale.dim(1);
            for (int r = 0; r < rows; ++r) {
                const int64_t row = row_begin + r;
                const uint8_t* codes = w.data<uint8_t>() + row * k;
                const float* row_scales = scales + (row / weight.block_rows) * scale_cols;
                for (int64_t col = 0; col < k; col += weight.block_cols) {
                    int64_t n = std::min(weight.block_cols, k - col);
                    kernels.f8_e4m3_to_f32(codes + col, row_scales[col / weight.block_cols],
                                           out + r * k + col, n);
                }
            }
            return;
        }
        case DType::u8: {
            const int64_t packed_cols = w.dim(1), scale_cols = k / 16;
            for (int r = 0; r < rows; ++r) {
                const int64_t row = row_begin + r;
                kernels.nvfp4_to_f32(w.data<uint8_t>() + row * packed_cols,
                                     weight.block_scale.data<uint8_t>() + row * scale_cols,
                                     weight.global_scale, out + r * k, k);
            }
            return;
        }
        default:
            return;  // rejected by the front
    }
}

// NVFP4 rows stay packed: each row's codes are decoded once per group of up to 8 tokens.
void linear_nvfp4_streaming(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    const Kernels& kernels = cpu::kernels();
    const int64_t n = weight.rows(), k = weight.cols(), tokens = x.dim(0);
    const int64_t packed_cols = k / 2, scale_cols = k / 16;
    const uint8_t* codes = weight.weight.data<uint8_t>();
    const uint8_t* scales = weight.block_scale.data<uint8_t>();
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
#pragma omp parallel for schedule(static) if (n * k * tokens >= kParallelMinMacs)
    for (int64_t r = 0; r < n; ++r) {
        float out[kNvFp4DotMaxTokens];
        for (int64_t t0 = 0; t0 < tokens; t0 += kNvFp4DotMaxTokens) {
            const int group = static_cast<int>(std::min<int64_t>(kNvFp4DotMaxTokens, tokens - t0));
            kernels.nvfp4_dot(codes + r * packed_cols, scales + r * scale_cols, xs + t0 * k, k,
                              group, k, out);
            for (int t = 0; t < group; ++t) ys[(t0 + t) * n + r] = out[t] * weight.global_scale;
        }
    }
}

void linear_streaming(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    const Kernels& kernels = cpu::kernels();
    const Tensor& w = weight.weight;
    const int64_t n = w.dim(0), k = weight.cols(), tokens = x.dim(0);
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
#pragma omp parallel if (n * k * tokens >= kParallelMinMacs)
    {
        std::vector<float> row;  // f8 rows are expanded here first
        if (w.dtype() == DType::f8_e4m3) row.resize(k);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; ++r) {
            for (int64_t t = 0; t < tokens; ++t) {
                float value;
                if (w.dtype() == DType::bf16) {
                    value = kernels.dot_bf16_f32(w.data<uint16_t>() + r * k, xs + t * k, k);
                } else if (w.dtype() == DType::f32) {
                    value = kernels.dot_f32(w.data<float>() + r * k, xs + t * k, k);
                } else {
                    if (t == 0) weight_rows_to_f32(weight, r, 1, row.data(), kernels);
                    value = kernels.dot_f32(row.data(), xs + t * k, k);
                }
                ys[t * n + r] = value;
            }
        }
    }
}

void linear_panels(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    const Kernels& kernels = cpu::kernels();
    const int64_t n = weight.rows(), k = weight.cols(), tokens = x.dim(0);
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    const int64_t n_panels = (n + kPanelRows - 1) / kPanelRows;
#pragma omp parallel if (n * k * tokens >= kParallelMinMacs)
    {
        std::vector<float> panel(static_cast<size_t>(kPanelRows) * k);
        // Panels outermost: each thread converts its weight rows once and runs every token
        // chunk through them while they are in cache.
#pragma omp for schedule(static)
        for (int64_t p = 0; p < n_panels; ++p) {
            const int64_t row_begin = p * kPanelRows;
            const int rows = static_cast<int>(std::min<int64_t>(kPanelRows, n - row_begin));
            weight_rows_to_f32(weight, row_begin, rows, panel.data(), kernels);
            for (int64_t t = 0; t < tokens; t += kTokenChunk) {
                const int chunk = static_cast<int>(std::min<int64_t>(kTokenChunk, tokens - t));
                kernels.matmul_panel(panel.data(), rows, xs + t * k, k, chunk, k,
                                     ys + t * n + row_begin, n);
            }
        }
    }
}

}  // namespace

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    if (x.dtype() == DType::bf16) {
        // The host kernels read f32 activations: bf16 ones widened, exactly.
        Tensor wide = Tensor::zeros(DType::f32, x.shape());
        cpu::kernels().bf16_to_f32(x.data<uint16_t>(), wide.data<float>(), x.numel());
        return cpu::linear(wide, weight, y);
    }
    if (weight.emulate_w4a4) {
        // W4A4: the activations the hardware would see, quantized per block of 16.
        Tensor quantized = Tensor::zeros(DType::f32, x.shape());
        std::copy_n(x.data<float>(), x.numel(), quantized.data<float>());
        for (int64_t t = 0; t < x.dim(0); ++t) {
            fake_quantize_activation_nvfp4(
                std::span<float>(quantized.data<float>() + t * x.dim(1), x.dim(1)),
                weight.input_scale);
        }
        LinearWeight weight_only = weight;
        weight_only.emulate_w4a4 = false;
        cpu::linear(quantized, weight_only, y);
        return;
    }
    if (weight.format() == WeightFormat::nvfp4 && x.dim(0) <= kNvFp4StreamingMaxTokens) {
        linear_nvfp4_streaming(x, weight, y);
    } else if (x.dim(0) <= kStreamingMaxTokens) {
        linear_streaming(x, weight, y);
    } else {
        linear_panels(x, weight, y);
    }
}

}  // namespace fourbit::cpu
