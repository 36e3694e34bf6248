// The CPU kernel sets (generic, AVX2, AVX-512) against naive double references, with lengths
// that leave vector tails and panel shapes that leave partial register tiles. A set the host
// cannot run is skipped, not failed.
#include "ops/cpu/kernels.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/reference_values.h"

namespace fourbit::cpu {
namespace {

using test_support::bf16_value;
using test_support::e4m3_value;
using test_support::gamma;
using test_support::kUnitRoundoff;

std::vector<float> random_floats(size_t n, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
    std::uniform_real_distribution<float> dist(low, high);
    std::vector<float> values(n);
    for (float& value : values) value = dist(rng);
    return values;
}

// bf16 codes of random values in [-2, 2) (truncated f32 bits: any code is a valid input).
std::vector<uint16_t> random_bf16(size_t n, std::mt19937& rng) {
    std::vector<uint16_t> codes(n);
    for (uint16_t& code : codes) {
        code = static_cast<uint16_t>(std::bit_cast<uint32_t>(random_floats(1, rng, -2, 2)[0]) >> 16);
    }
    return codes;
}

constexpr int64_t kLengths[] = {0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 72, 100, 1024, 1031};

struct KernelSet {
    const char* name;
    const Kernels& (*get)();
    bool (*available)();
};

bool always() { return true; }

class KernelSetTest : public ::testing::TestWithParam<KernelSet> {
protected:
    void SetUp() override {
        if (!GetParam().available()) {
            GTEST_SKIP() << "this CPU cannot run the " << GetParam().name << " kernels";
        }
    }
    const Kernels& kernels() const { return GetParam().get(); }
};

TEST_P(KernelSetTest, ReportsItsIsa) { EXPECT_EQ(std::string(kernels().isa), GetParam().name); }

TEST_P(KernelSetTest, DotF32) {
    std::mt19937 rng(1);
    for (int64_t n : kLengths) {
        // Offset by one float so the loads are unaligned as well.
        std::vector<float> a = random_floats(n + 1, rng), b = random_floats(n + 1, rng);
        double exact = 0, magnitude = 0;
        for (int64_t i = 0; i < n; ++i) {
            exact += static_cast<double>(a[i + 1]) * b[i + 1];
            magnitude += std::fabs(static_cast<double>(a[i + 1]) * b[i + 1]);
        }
        const float got = kernels().dot_f32(a.data() + 1, b.data() + 1, n);
        EXPECT_NEAR(got, exact, gamma(n) * magnitude + 1e-30) << "n=" << n;
    }
}

TEST_P(KernelSetTest, DotF32SeesEveryElement) {
    // A single 1 at each position: a skipped tail or lane gives 0 instead of 1 exactly.
    for (int64_t n : kLengths) {
        std::vector<float> ones(n, 1.0f);
        for (int64_t i = 0; i < n; ++i) {
            std::vector<float> unit(n, 0.0f);
            unit[i] = 1.0f;
            ASSERT_EQ(kernels().dot_f32(unit.data(), ones.data(), n), 1.0f) << "n=" << n << " i=" << i;
        }
    }
}

TEST_P(KernelSetTest, DotBf16F32) {
    std::mt19937 rng(2);
    for (int64_t n : kLengths) {
        std::vector<uint16_t> w = random_bf16(n + 1, rng);
        std::vector<float> x = random_floats(n + 1, rng);
        double exact = 0, magnitude = 0;
        for (int64_t i = 0; i < n; ++i) {
            exact += bf16_value(w[i + 1]) * x[i + 1];
            magnitude += std::fabs(bf16_value(w[i + 1]) * x[i + 1]);
        }
        const float got = kernels().dot_bf16_f32(w.data() + 1, x.data() + 1, n);
        EXPECT_NEAR(got, exact, gamma(n) * magnitude + 1e-30) << "n=" << n;
    }
}

TEST_P(KernelSetTest, Bf16ToF32IsExact) {
    std::mt19937 rng(3);
    for (int64_t n : kLengths) {
        std::vector<uint16_t> in = random_bf16(n, rng);
        const float sentinel = -12345.0f;
        std::vector<float> out(n + 1, sentinel);
        kernels().bf16_to_f32(in.data(), out.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], bf16_value(in[i])) << "n=" << n << " i=" << i;
        EXPECT_EQ(out[n], sentinel) << "wrote past the end, n=" << n;
    }
}

TEST_P(KernelSetTest, Bf16ToF32EveryCode) {
    std::vector<uint16_t> in(65536);
    for (int i = 0; i < 65536; ++i) in[i] = static_cast<uint16_t>(i);
    std::vector<float> out(65536);
    kernels().bf16_to_f32(in.data(), out.data(), 65536);
    for (int i = 0; i < 65536; ++i) {
        const uint32_t bits = std::bit_cast<uint32_t>(out[i]);
        ASSERT_EQ(bits, static_cast<uint32_t>(i) << 16) << std::hex << i;
    }
}

TEST_P(KernelSetTest, F8E4m3ToF32TimesScale) {
    std::mt19937 rng(4);
    for (float scale : {1.0f, 0.0078125f, 3.7e-3f, -2.5f}) {
        for (int64_t n : kLengths) {
            std::vector<uint8_t> in(n);
            for (uint8_t& code : in) {
                do code = static_cast<uint8_t>(rng()); while ((code & 0x7f) == 0x7f);
            }
            const float sentinel = -12345.0f;
            std::vector<float> out(n + 1, sentinel);
            kernels().f8_e4m3_to_f32(in.data(), scale, out.data(), n);
            for (int64_t i = 0; i < n; ++i) {
                // The exact product of a 4-bit significand and an f32 fits in a double, so
                // rounding it once to f32 is exactly what one f32 multiply gives.
                const float expected = static_cast<float>(e4m3_value(in[i]) * scale);
                ASSERT_EQ(out[i], expected) << "code " << int(in[i]) << " scale " << scale;
            }
            EXPECT_EQ(out[n], sentinel) << "wrote past the end, n=" << n;
        }
    }
}

TEST_P(KernelSetTest, F8E4m3NanCodesStayNan) {
    const uint8_t in[] = {0x7f, 0xff, 0x38};
    float out[3];
    kernels().f8_e4m3_to_f32(in, 2.0f, out, 3);
    EXPECT_TRUE(std::isnan(out[0]));
    EXPECT_TRUE(std::isnan(out[1]));
    EXPECT_EQ(out[2], 2.0f);
}

TEST_P(KernelSetTest, Axpy) {
    std::mt19937 rng(5);
    for (float a : {1.0f, -0.75f, 3.0e-3f}) {
        for (int64_t n : kLengths) {
            std::vector<float> x = random_floats(n + 1, rng), y = random_floats(n + 1, rng);
            std::vector<float> before = y;
            kernels().axpy(a, x.data(), y.data(), n);
            for (int64_t i = 0; i < n; ++i) {
                const double exact = before[i] + static_cast<double>(a) * x[i];
                // One product and one sum, each rounded once (or fused): 2 units of roundoff.
                const double tolerance =
                    2 * kUnitRoundoff * (std::fabs(before[i]) + std::fabs(a * x[i])) + 1e-30;
                ASSERT_NEAR(y[i], exact, tolerance) << "n=" << n << " i=" << i;
            }
            EXPECT_EQ(y[n], before[n]) << "wrote past the end, n=" << n;
        }
    }
}

TEST_P(KernelSetTest, MatmulPanelAllSmallShapes) {
    std::mt19937 rng(6);
    const float sentinel = std::numeric_limits<float>::quiet_NaN();
    for (int rows = 1; rows <= 9; ++rows) {
        for (int tokens = 1; tokens <= 9; ++tokens) {
            for (int64_t k = 1; k <= 70; ++k) {
                // Strides wider than the data: the kernel must honour them and leave the gaps.
                const int64_t x_stride = k + 3, y_stride = rows + 2;
                std::vector<float> w = random_floats(rows * k, rng);
                std::vector<float> x = random_floats(tokens * x_stride, rng);
                std::vector<float> y(tokens * y_stride, sentinel);
                kernels().matmul_panel(w.data(), rows, x.data(), x_stride, tokens, k, y.data(),
                                       y_stride);
                for (int t = 0; t < tokens; ++t) {
                    for (int r = 0; r < y_stride; ++r) {
                        const float got = y[t * y_stride + r];
                        if (r >= rows) {
                            ASSERT_TRUE(std::isnan(got)) << "wrote into the stride gap";
                            continue;
                        }
                        double exact = 0, magnitude = 0;
                        for (int64_t i = 0; i < k; ++i) {
                            const double term = static_cast<double>(w[r * k + i]) * x[t * x_stride + i];
                            exact += term;
                            magnitude += std::fabs(term);
                        }
                        ASSERT_NEAR(got, exact, gamma(k) * magnitude + 1e-30)
                            << "rows=" << rows << " tokens=" << tokens << " k=" << k << " r=" << r
                            << " t=" << t;
                    }
                }
            }
        }
    }
}

TEST_P(KernelSetTest, MatmulPanelLargerShapes) {
    // Full tiles plus remainders at sizes linear() uses (16-row panels, 64-token chunks).
    std::mt19937 rng(7);
    for (auto [rows, tokens, k] : {std::tuple{16, 64, 300}, std::tuple{16, 37, 1024},
                                   std::tuple{13, 5, 1031}, std::tuple{4, 4, 16}}) {
        std::vector<float> w = random_floats(rows * k, rng);
        std::vector<float> x = random_floats(tokens * k, rng);
        std::vector<float> y(tokens * rows);
        kernels().matmul_panel(w.data(), rows, x.data(), k, tokens, k, y.data(), rows);
        for (int t = 0; t < tokens; ++t) {
            for (int r = 0; r < rows; ++r) {
                double exact = 0, magnitude = 0;
                for (int64_t i = 0; i < k; ++i) {
                    const double term = static_cast<double>(w[r * k + i]) * x[t * k + i];
                    exact += term;
                    magnitude += std::fabs(term);
                }
                ASSERT_NEAR(y[t * rows + r], exact, gamma(k) * magnitude)
                    << "rows=" << rows << " tokens=" << tokens << " k=" << k;
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, KernelSetTest,
                         ::testing::Values(KernelSet{"generic", kernels_generic, always},
                                           KernelSet{"avx2", kernels_avx2, cpu_has_avx2},
                                           KernelSet{"avx512", kernels_avx512, cpu_has_avx512}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Kernels, E4m3TableMatchesTheFormula) {
    const float* table = e4m3_table();
    for (int code = 0; code < 256; ++code) {
        const double expected = e4m3_value(static_cast<uint8_t>(code));
        if (std::isnan(expected)) {
            EXPECT_TRUE(std::isnan(table[code])) << code;
        } else {
            EXPECT_EQ(static_cast<double>(table[code]), expected) << code;
        }
    }
}

TEST(Kernels, DefaultSetIsTheWidestTheCpuRuns) {
    if (std::getenv("FOURBIT_CPU_ISA") != nullptr) GTEST_SKIP() << "FOURBIT_CPU_ISA forces a set";
    const std::string expected = cpu_has_avx512() ? "avx512" : cpu_has_avx2() ? "avx2" : "generic";
    EXPECT_EQ(std::string(kernels().isa), expected);
}

}  // namespace
}  // namespace fourbit::cpu
