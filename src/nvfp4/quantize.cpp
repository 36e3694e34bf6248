#include "nvfp4/quantize.h"

#include <algorithm>
#include <cmath>

#include "nvfp4/e2m1.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {

namespace {

// ModelOpt (newer versions) clamps a block scale into E4M3's range before the cast: below 2^-9
// it would flush to 0, above 448 it would overflow to NaN.
constexpr float kMinBlockScale = 0x1p-9f;
constexpr float kMaxBlockScale = 448.0f;

}  // namespace

float checked_amax(std::span<const float> x, std::string_view name) {
    float amax = 0.0f;
    for (size_t i = 0; i < x.size(); ++i) {
        if (!std::isfinite(x[i])) fail("{}: element {} is {}", name, i, x[i]);
        amax = std::max(amax, std::fabs(x[i]));
    }
    return amax;
}

float nvfp4_global_scale(float amax) { return amax > 0.0f ? amax / kNvFp4AmaxDivisor : 1.0f; }

NvFp4Matrix quantize_nvfp4(std::span<const float> weight, int64_t rows, int64_t cols,
                           float global_scale, std::string_view name) {
    if (cols % kNvFp4BlockSize != 0) {
        fail("{}: {} columns are not a multiple of NVFP4's block of {}", name, cols,
             kNvFp4BlockSize);
    }
    FOURBIT_ASSERT(static_cast<int64_t>(weight.size()) == rows * cols, "quantize_nvfp4 size");
    FOURBIT_ASSERT(global_scale > 0.0f && std::isfinite(global_scale), "global scale {}",
                   global_scale);
    NvFp4Matrix out;
    out.rows = rows;
    out.cols = cols;
    out.global_scale = global_scale;
    out.packed.assign(rows * cols / 2, 0);
    out.block_scales.assign(rows * cols / kNvFp4BlockSize, 0);
    const int64_t blocks_per_row = cols / kNvFp4BlockSize;
    // The same f32 operations in the same order as ModelOpt, so that the bits agree.
    const float block_divisor = 6.0f * global_scale;
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < blocks_per_row; ++b) {
            const float* block = weight.data() + r * cols + b * kNvFp4BlockSize;
            float block_amax = 0.0f;
            for (int64_t i = 0; i < kNvFp4BlockSize; ++i) {
                if (!std::isfinite(block[i])) {
                    fail("{}: element [{}, {}] is {}", name, r, b * kNvFp4BlockSize + i, block[i]);
                }
                block_amax = std::max(block_amax, std::fabs(block[i]));
            }
            float block_scale = block_amax / block_divisor;
            if (block_scale == 0.0f) block_scale = 1.0f;  // an all-zero block
            const uint8_t scale_code =
                f32_to_f8_e4m3(std::clamp(block_scale, kMinBlockScale, kMaxBlockScale));
            out.block_scales[r * blocks_per_row + b] = scale_code;
            const float step = f8_e4m3_to_f32(scale_code) * global_scale;
            for (int64_t i = 0; i < kNvFp4BlockSize; i += 2) {
                const uint8_t low = e2m1_encode(block[i] / step);
                const uint8_t high = e2m1_encode(block[i + 1] / step);
                out.packed[(r * cols + b * kNvFp4BlockSize + i) / 2] =
                    static_cast<uint8_t>(low | (high << 4));
            }
        }
    }
    return out;
}

void dequantize_nvfp4(const NvFp4Matrix& matrix, std::span<float> out) {
    FOURBIT_ASSERT(static_cast<int64_t>(out.size()) == matrix.rows * matrix.cols, "dequant size");
    const int64_t blocks_per_row = matrix.cols / kNvFp4BlockSize;
    for (int64_t r = 0; r < matrix.rows; ++r) {
        for (int64_t c = 0; c < matrix.cols; ++c) {
            const uint8_t byte = matrix.packed[(r * matrix.cols + c) / 2];
            const uint8_t code = (c % 2 == 0) ? (byte & 0xf) : (byte >> 4);
            const float scale =
                f8_e4m3_to_f32(matrix.block_scales[r * blocks_per_row + c / kNvFp4BlockSize]);
            out[r * matrix.cols + c] = e2m1_decode(code) * scale * matrix.global_scale;
        }
    }
}

void fake_quantize_activation_nvfp4(std::span<float> x, float input_scale) {
    FOURBIT_ASSERT(x.size() % kNvFp4BlockSize == 0, "activation row of {}", x.size());
    const float inverse_input_scale = 1.0f / input_scale;
    for (size_t b = 0; b < x.size(); b += kNvFp4BlockSize) {
        float block_amax = 0.0f;
        for (int64_t i = 0; i < kNvFp4BlockSize; ++i) {
            block_amax = std::max(block_amax, std::fabs(x[b + i]));
        }
        const uint8_t scale_code = f32_to_f8_e4m3(inverse_input_scale * block_amax / 6.0f);
        const float scale = f8_e4m3_to_f32(scale_code);
        const float step = scale * input_scale;
        for (int64_t i = 0; i < kNvFp4BlockSize; ++i) {
            x[b + i] = step == 0.0f ? 0.0f : e2m1_decode(e2m1_encode(x[b + i] / step)) * step;
        }
    }
}

}  // namespace fourbit
