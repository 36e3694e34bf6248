// NVFP4 block quantization with ModelOpt's formulas (nvfp4.md §1.4): one f32 global scale per
// tensor (shared by a fused group), one E4M3 scale per 16 consecutive elements of a row, and
// E2M1 codes packed two per byte, the even column in the low nibble.
//   x ~= e2m1(code) * e4m3(block_scale) * global_scale
// Also the activation side (§1.5), to emulate W4A4 numerics: a static input scale from the
// calibrated amax and block scales computed on the fly.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace fourbit {

inline constexpr int64_t kNvFp4BlockSize = 16;
// E2M1's largest value times E4M3's: amax maps onto 6 * 448.
inline constexpr float kNvFp4AmaxDivisor = 6.0f * 448.0f;

struct NvFp4Matrix {
    int64_t rows = 0;
    int64_t cols = 0;                  // a multiple of 16
    std::vector<uint8_t> packed;       // [rows, cols / 2]
    std::vector<uint8_t> block_scales; // [rows, cols / 16], float8_e4m3fn codes
    float global_scale = 1.0f;         // ModelOpt's weight_scale_2 (dequantize direction)
};

// max |x|; an Error naming `name` and the index if any element is NaN or infinite.
float checked_amax(std::span<const float> x, std::string_view name);

// ModelOpt's weight_scale_2 / input_scale for a calibrated amax: amax / (6 * 448). An amax of 0
// (an all-zero tensor, where ModelOpt would divide 0 by 0) gives 1.
float nvfp4_global_scale(float amax);

// Quantizes `weight` ([rows, cols] row-major f32) with `global_scale` (from the amax of the
// tensor, or of its whole fused group: q/k/v, an expert's w1/w3). `name` labels errors: cols not
// a multiple of 16, NaN or Inf in the weight.
NvFp4Matrix quantize_nvfp4(std::span<const float> weight, int64_t rows, int64_t cols,
                           float global_scale, std::string_view name);

// out ([rows, cols]) = the values the codes stand for.
void dequantize_nvfp4(const NvFp4Matrix& matrix, std::span<float> out);

// W4A4 emulation: replaces each block of 16 in `x` (a row of activations, length a multiple of
// 16) by its NVFP4 quantize-dequantize under `input_scale` (= calibrated amax / (6 * 448)), as
// the serving kernels' reference does: block scale e4m3(max|block| / (6 * input_scale)),
// saturating at 448; codes e2m1(x / (block scale * input_scale)).
void fake_quantize_activation_nvfp4(std::span<float> x, float input_scale);

}  // namespace fourbit
