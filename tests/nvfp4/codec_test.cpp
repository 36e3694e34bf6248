// The NVFP4 codec against torch's implementation of ModelOpt's formulas
// (tests/golden/nvfp4, made by tools/reference/make_nvfp4_reference.py): bit-identical packed
// codes, E4M3 block scales, global scales and dequantized values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "nvfp4/e2m1.h"
#include "nvfp4/quantize.h"
#include "util/error.h"

namespace fourbit {
namespace {

std::shared_ptr<const SafetensorsFile> reference() {
    static auto file = SafetensorsFile::open(std::string(FOURBIT_SOURCE_DIR) +
                                             "/tests/golden/nvfp4/reference.safetensors");
    return file;
}

template <typename T>
std::vector<T> values(const std::string& name) {
    Tensor tensor = reference()->tensor(name);
    std::vector<T> out(tensor.numel());
    std::memcpy(out.data(), tensor.raw(), tensor.size_bytes());
    return out;
}

std::vector<uint32_t> bits(const std::vector<float>& x) {
    std::vector<uint32_t> out(x.size());
    std::memcpy(out.data(), x.data(), x.size() * sizeof(float));
    return out;
}

class WeightCase : public ::testing::TestWithParam<std::string> {};

TEST_P(WeightCase, MatchesModelOptBitForBit) {
    const std::string name = GetParam();
    Tensor weight = reference()->tensor(name + ".weight");
    const int64_t rows = weight.dim(0), cols = weight.dim(1);
    const float global_scale = values<float>(name + ".global_scale").at(0);
    std::vector<float> w = values<float>(name + ".weight");
    NvFp4Matrix q = quantize_nvfp4(w, rows, cols, global_scale, name);
    EXPECT_EQ(q.packed, values<uint8_t>(name + ".packed"));
    EXPECT_EQ(q.block_scales, values<uint8_t>(name + ".block_scales"));
    std::vector<float> dequant(rows * cols);
    dequantize_nvfp4(q, dequant);
    EXPECT_EQ(bits(dequant), bits(values<float>(name + ".dequant")));
}

// Single tensors: the global scale comes from their own amax (fused groups: see below).
class SingleTensorCase : public ::testing::TestWithParam<std::string> {};

TEST_P(SingleTensorCase, GlobalScaleFromAmax) {
    const std::string name = GetParam();
    const float amax = checked_amax(values<float>(name + ".weight"), name);
    EXPECT_EQ(nvfp4_global_scale(amax), values<float>(name + ".global_scale").at(0));
}

INSTANTIATE_TEST_SUITE_P(Reference, SingleTensorCase,
                         ::testing::Values("ties", "zero_blocks", "all_zero",
                                           "tiny_and_huge_blocks", "huge", "subnormal_f32",
                                           "all_negative_blocks", "outlier_columns",
                                           "random_64x256", "random_bf16_grid"));

INSTANTIATE_TEST_SUITE_P(Reference, WeightCase,
                         ::testing::Values("ties", "zero_blocks", "all_zero",
                                           "tiny_and_huge_blocks", "huge", "subnormal_f32",
                                           "all_negative_blocks", "outlier_columns",
                                           "random_64x256", "random_bf16_grid", "fused_q",
                                           "fused_k"));

TEST(FusedGroup, MembersShareTheGroupsGlobalScale) {
    const float q_amax = checked_amax(values<float>("fused_q.weight"), "q");
    const float k_amax = checked_amax(values<float>("fused_k.weight"), "k");
    const float shared = nvfp4_global_scale(std::max(q_amax, k_amax));
    EXPECT_EQ(shared, values<float>("fused_q.global_scale").at(0));
    EXPECT_EQ(shared, values<float>("fused_k.global_scale").at(0));
    EXPECT_NE(shared, nvfp4_global_scale(q_amax)) << "the case must need the shared scale";
}

class ActivationCase : public ::testing::TestWithParam<std::string> {};

TEST_P(ActivationCase, FakeQuantMatchesReference) {
    const std::string name = GetParam();
    Tensor x = reference()->tensor(name + ".x");
    std::vector<float> rows = values<float>(name + ".x");
    const float input_scale = values<float>(name + ".input_scale").at(0);
    for (int64_t r = 0; r < x.dim(0); ++r) {
        fake_quantize_activation_nvfp4(std::span<float>(rows).subspan(r * x.dim(1), x.dim(1)),
                                       input_scale);
    }
    EXPECT_EQ(bits(rows), bits(values<float>(name + ".fake_quant")));
}

INSTANTIATE_TEST_SUITE_P(Reference, ActivationCase,
                         ::testing::Values("act_calibrated", "act_small_scale"));

TEST(E2M1, DecodeTable) {
    const float expected[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    for (uint8_t code = 0; code < 16; ++code) {
        const float value = e2m1_decode(code);
        EXPECT_EQ(std::fabs(value), expected[code & 7]) << int(code);
        EXPECT_EQ(std::signbit(value), code >= 8) << int(code);
    }
}

TEST(E2M1, EveryValueEncodesToItself) {
    for (uint8_t code = 0; code < 16; ++code) {
        if (code == 8) continue;  // -0 is encoded as +0 (ModelOpt's x < 0 sign rule)
        EXPECT_EQ(e2m1_encode(e2m1_decode(code)), code) << int(code);
    }
    EXPECT_EQ(e2m1_encode(-0.0f), 0);
    EXPECT_EQ(e2m1_encode(-0.1f), 8) << "small negatives keep their sign";
}

TEST(E2M1, NearestWithTiesToEvenAndSaturation) {
    // Brute force over a fine grid: the nearest grid value, the even code on ties.
    const float grid[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    for (int i = 0; i <= 8000; ++i) {
        const float x = i * 0.001f;
        int best = 0;
        for (int c = 1; c < 8; ++c) {
            const float d = std::fabs(x - grid[c]), best_d = std::fabs(x - grid[best]);
            if (d < best_d || (d == best_d && c % 2 == 0)) best = c;
        }
        EXPECT_EQ(e2m1_encode(x), best) << x;
        EXPECT_EQ(e2m1_encode(-x), x > 0 ? best | 8 : best) << -x;
    }
    EXPECT_EQ(e2m1_encode(1e30f), 7);
    EXPECT_EQ(e2m1_encode(std::numeric_limits<float>::infinity()), 7);
}

TEST(Quantize, RejectsNonFiniteWeightsNamingTheTensorAndElement) {
    std::vector<float> w(32, 1.0f);
    w[21] = std::nanf("");
    try {
        quantize_nvfp4(w, 2, 16, 1.0f, "model.layers.3.mlp.w1");
        FAIL() << "expected an Error";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("model.layers.3.mlp.w1"), std::string::npos);
        EXPECT_NE(std::string(error.what()).find("[1, 5]"), std::string::npos) << error.what();
    }
    w[21] = std::numeric_limits<float>::infinity();
    EXPECT_THROW(checked_amax(w, "x"), Error);
}

TEST(Quantize, RejectsColumnsThatAreNotWholeBlocks) {
    std::vector<float> w(24, 1.0f);
    EXPECT_THROW(quantize_nvfp4(w, 1, 24, 1.0f, "w"), Error);
}

}  // namespace
}  // namespace fourbit
