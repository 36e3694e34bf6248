// NVFP4 weights in the CPU linear op and kernels: against dequantize_nvfp4 (the codec,
// itself bit-exact against ModelOpt's formulas) followed by a double-precision product.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "nvfp4/quantize.h"
#include "ops/cpu/kernels.h"
#include "ops/linear.h"

namespace fourbit {
namespace {

struct Quantized {
    NvFp4Matrix matrix;
    std::vector<float> dequantized;
    LinearWeight weight;
};

Quantized make_nvfp4(int64_t n, int64_t k, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(n * k);
    for (float& value : w) value = normal(rng);
    w[3] = 40.0f;  // an outlier: other blocks' scales sit far below the global range
    Quantized q;
    q.matrix = quantize_nvfp4(w, n, k, nvfp4_global_scale(checked_amax(w, "w")), "w");
    q.dequantized.resize(n * k);
    dequantize_nvfp4(q.matrix, q.dequantized);
    q.weight.weight = Tensor::zeros(DType::u8, {n, k / 2});
    std::memcpy(q.weight.weight.data<uint8_t>(), q.matrix.packed.data(), q.matrix.packed.size());
    q.weight.block_scale = Tensor::zeros(DType::f8_e4m3, {n, k / 16});
    std::memcpy(q.weight.block_scale.data<uint8_t>(), q.matrix.block_scales.data(),
                q.matrix.block_scales.size());
    q.weight.global_scale = q.matrix.global_scale;
    return q;
}

Tensor random_rows(int64_t rows, int64_t k, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Tensor x = Tensor::zeros(DType::f32, {rows, k});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(rng);
    return x;
}

// |error| of an f32 dot product of length k, against the sum of |terms|.
double tolerance(double magnitude, int64_t k) { return 2.0 * k * 6e-8 * magnitude + 1e-6; }

TEST(Nvfp4Linear, MatchesDequantizedProductForEveryTokenCount) {
    std::mt19937 rng(7);
    for (int64_t k : {16, 48, 256}) {
        Quantized q = make_nvfp4(37, k, rng);
        EXPECT_EQ(q.weight.format(), WeightFormat::nvfp4);
        EXPECT_EQ(q.weight.cols(), k);
        for (int64_t tokens : {1, 2, 3, 8, 9, 17, 70}) {  // streaming (<= 8) and panels
            Tensor x = random_rows(tokens, k, rng);
            Tensor y = Tensor::zeros(DType::f32, {tokens, 37});
            linear(x, q.weight, y);
            for (int64_t t = 0; t < tokens; ++t) {
                for (int64_t r = 0; r < 37; ++r) {
                    double expected = 0, magnitude = 0;
                    for (int64_t c = 0; c < k; ++c) {
                        const double term =
                            double(q.dequantized[r * k + c]) * x.data<float>()[t * k + c];
                        expected += term;
                        magnitude += std::fabs(term);
                    }
                    EXPECT_NEAR(y.data<float>()[t * 37 + r], expected, tolerance(magnitude, k))
                        << "k " << k << " tokens " << tokens << " row " << r;
                }
            }
        }
    }
}

TEST(Nvfp4Linear, W4A4EmulationQuantizesTheActivationsFirst) {
    std::mt19937 rng(11);
    Quantized q = make_nvfp4(20, 64, rng);
    Tensor x = random_rows(5, 64, rng);
    q.weight.input_scale = nvfp4_global_scale(checked_amax({x.data<float>(), 320}, "x"));
    Tensor expected_x = Tensor::zeros(DType::f32, {5, 64});
    std::memcpy(expected_x.data<float>(), x.data<float>(), x.size_bytes());
    for (int64_t t = 0; t < 5; ++t) {
        fake_quantize_activation_nvfp4({expected_x.data<float>() + t * 64, 64},
                                       q.weight.input_scale);
    }
    Tensor expected = Tensor::zeros(DType::f32, {5, 20}),
           emulated = Tensor::zeros(DType::f32, {5, 20});
    linear(expected_x, q.weight, expected);
    q.weight.emulate_w4a4 = true;
    linear(x, q.weight, emulated);
    bool differs_from_weight_only = false;
    Tensor weight_only = Tensor::zeros(DType::f32, {5, 20});
    q.weight.emulate_w4a4 = false;
    linear(x, q.weight, weight_only);
    for (int64_t i = 0; i < 100; ++i) {
        EXPECT_EQ(emulated.data<float>()[i], expected.data<float>()[i]);
        differs_from_weight_only |= emulated.data<float>()[i] != weight_only.data<float>()[i];
    }
    EXPECT_TRUE(differs_from_weight_only);
}

class Nvfp4Kernels : public ::testing::TestWithParam<const char*> {
protected:
    const cpu::Kernels* set() {
        std::string isa = GetParam();
        if (isa == "avx512") return cpu::cpu_has_avx512() ? &cpu::kernels_avx512() : nullptr;
        if (isa == "avx2") return cpu::cpu_has_avx2() ? &cpu::kernels_avx2() : nullptr;
        return &cpu::kernels_generic();
    }
};

TEST_P(Nvfp4Kernels, DecodeAndDotAgreeWithTheCodec) {
    const cpu::Kernels* kernels = set();
    if (kernels == nullptr) GTEST_SKIP() << "this CPU lacks " << GetParam();
    std::mt19937 rng(3);
    Quantized q = make_nvfp4(4, 160, rng);
    std::vector<float> row(160);
    for (int64_t r = 0; r < 4; ++r) {
        kernels->nvfp4_to_f32(q.matrix.packed.data() + r * 80,
                              q.matrix.block_scales.data() + r * 10, q.matrix.global_scale,
                              row.data(), 160);
        for (int64_t c = 0; c < 160; ++c)
            EXPECT_EQ(row[c], q.dequantized[r * 160 + c]) << r << "," << c;
        Tensor x = random_rows(cpu::kNvFp4DotMaxTokens, 160, rng);
        float out[cpu::kNvFp4DotMaxTokens];
        kernels->nvfp4_dot(q.matrix.packed.data() + r * 80, q.matrix.block_scales.data() + r * 10,
                           x.data<float>(), 160, cpu::kNvFp4DotMaxTokens, 160, out);
        for (int t = 0; t < cpu::kNvFp4DotMaxTokens; ++t) {
            double expected = 0, magnitude = 0;
            for (int64_t c = 0; c < 160; ++c) {
                const double term = double(q.dequantized[r * 160 + c]) / q.matrix.global_scale *
                                    x.data<float>()[t * 160 + c];
                expected += term;
                magnitude += std::fabs(term);
            }
            EXPECT_NEAR(out[t], expected, tolerance(magnitude, 160)) << "token " << t;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Sets, Nvfp4Kernels, ::testing::Values("generic", "avx2", "avx512"));

}  // namespace
}  // namespace fourbit
