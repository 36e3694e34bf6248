// The CPU ops, each against a naive double-precision reference written here from the op's
// contract (its header): linear in f32/bf16/block-scaled FP8 on both the streaming and the
// panel path, rms_norm, partial NeoX RoPE, the MoE router and experts,
// swiglu, embedding and add (attention: attention_test.cpp).
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/wait.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "ops/add.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/moe.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "support/reference_values.h"

namespace fourbit {
namespace {

using test_support::bf16_value;
using test_support::e4m3_value;
using test_support::gamma;
using test_support::kUnitRoundoff;

Tensor random_f32(Shape shape, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
    Tensor tensor = Tensor::zeros(DType::f32, std::move(shape));
    std::uniform_real_distribution<float> dist(low, high);
    for (int64_t i = 0; i < tensor.numel(); ++i) tensor.data<float>()[i] = dist(rng);
    return tensor;
}

// Random bf16 codes of values in [low, high) (truncated f32 bits).
Tensor random_bf16(Shape shape, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
    Tensor tensor = Tensor::zeros(DType::bf16, std::move(shape));
    std::uniform_real_distribution<float> dist(low, high);
    for (int64_t i = 0; i < tensor.numel(); ++i) {
        tensor.data<uint16_t>()[i] = static_cast<uint16_t>(std::bit_cast<uint32_t>(dist(rng)) >> 16);
    }
    return tensor;
}

// Random finite e4m3 codes (any byte but the two NaNs).
Tensor random_e4m3(Shape shape, std::mt19937& rng) {
    Tensor tensor = Tensor::zeros(DType::f8_e4m3, std::move(shape));
    for (int64_t i = 0; i < tensor.numel(); ++i) {
        uint8_t code;
        do code = static_cast<uint8_t>(rng()); while ((code & 0x7f) == 0x7f);
        tensor.data<uint8_t>()[i] = code;
    }
    return tensor;
}

// Element [r, c] of a weight as the checkpoint means it, in double.
double weight_value(const LinearWeight& weight, int64_t r, int64_t c) {
    const Tensor& w = weight.weight;
    const int64_t k = w.dim(1);
    switch (w.dtype()) {
        case DType::f32:
            return w.data<float>()[r * k + c];
        case DType::bf16:
            return bf16_value(w.data<uint16_t>()[r * k + c]);
        case DType::f8_e4m3: {
            const int64_t scale_cols = weight.block_scale.dim(1);
            const double scale = weight.block_scale.data<float>()[(r / weight.block_rows) * scale_cols +
                                                                  c / weight.block_cols];
            return e4m3_value(w.data<uint8_t>()[r * k + c]) * scale;
        }
        default:
            ADD_FAILURE() << "no reference for " << dtype_name(w.dtype());
            return 0;
    }
}

// ---- linear ---------------------------------------------------------------------------------

LinearWeight make_weight(DType dtype, int64_t n, int64_t k, int64_t block_rows, int64_t block_cols,
                         std::mt19937& rng) {
    LinearWeight weight;
    if (dtype == DType::f32) weight.weight = random_f32({n, k}, rng);
    if (dtype == DType::bf16) weight.weight = random_bf16({n, k}, rng);
    if (dtype == DType::f8_e4m3) {
        weight.weight = random_e4m3({n, k}, rng);
        weight.block_rows = block_rows;
        weight.block_cols = block_cols;
        // Scales that differ per block by powers and fractions, so a block looked up in the
        // wrong place changes the result well beyond the tolerance.
        weight.block_scale = random_f32({(n + block_rows - 1) / block_rows,
                                         (k + block_cols - 1) / block_cols},
                                        rng, 1.0f / 512, 1.0f / 64);
    }
    return weight;
}

void expect_linear_matches_reference(const LinearWeight& weight, int64_t tokens, std::mt19937& rng) {
    const int64_t n = weight.rows(), k = weight.cols();
    Tensor x = random_f32({tokens, k}, rng);
    Tensor y = Tensor::zeros(DType::f32, {tokens, n});
    linear(x, weight, y);
    // Dequantize once in double.
    std::vector<double> w(n * k);
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < k; ++c) w[r * k + c] = weight_value(weight, r, c);
    }
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < n; ++r) {
            double exact = 0, magnitude = 0;
            for (int64_t c = 0; c < k; ++c) {
                const double term = w[r * k + c] * x.data<float>()[t * k + c];
                exact += term;
                magnitude += std::fabs(term);
            }
            // f32 accumulation of k products, plus one rounding of each dequantized weight
            // (code * scale in f32): gamma(k + 1) of the sum of magnitudes bounds it.
            ASSERT_NEAR(y.data<float>()[t * n + r], exact, gamma(k + 1) * magnitude + 1e-30)
                << dtype_name(weight.weight.dtype()) << " n=" << n << " k=" << k
                << " tokens=" << tokens << " t=" << t << " r=" << r;
        }
    }
}

// 1 and 2 tokens take the streaming path; 3 and more the panel path (16-row panels, 64-token
// chunks: 130 leaves a chunk of 2).
constexpr int64_t kTokenCounts[] = {1, 2, 3, 37, 130};

TEST(Linear, F32Weights) {
    std::mt19937 rng(10);
    for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {5, 17}, {33, 72}, {200, 300}}) {
        LinearWeight weight = make_weight(DType::f32, n, k, 0, 0, rng);
        for (int64_t tokens : kTokenCounts) expect_linear_matches_reference(weight, tokens, rng);
    }
}

TEST(Linear, Bf16Weights) {
    std::mt19937 rng(11);
    for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {5, 17}, {33, 72}, {200, 300}}) {
        LinearWeight weight = make_weight(DType::bf16, n, k, 0, 0, rng);
        for (int64_t tokens : kTokenCounts) expect_linear_matches_reference(weight, tokens, rng);
    }
}

TEST(Linear, Fp8WeightsWith128x128Blocks) {
    // 200 x 300: a full and a partial block of rows, two full and one partial of columns.
    std::mt19937 rng(12);
    LinearWeight weight = make_weight(DType::f8_e4m3, 200, 300, 128, 128, rng);
    for (int64_t tokens : kTokenCounts) expect_linear_matches_reference(weight, tokens, rng);
    // Smaller than one block in both directions.
    LinearWeight small = make_weight(DType::f8_e4m3, 20, 50, 128, 128, rng);
    for (int64_t tokens : kTokenCounts) expect_linear_matches_reference(small, tokens, rng);
}

TEST(Linear, Fp8WeightsWithSmallPartialBlocks) {
    // 4 x 8 blocks over 18 x 37: edge blocks of 2 rows and 5 columns; 18 rows also leave a
    // partial 16-row panel.
    std::mt19937 rng(13);
    LinearWeight weight = make_weight(DType::f8_e4m3, 18, 37, 4, 8, rng);
    for (int64_t tokens : kTokenCounts) expect_linear_matches_reference(weight, tokens, rng);
    // Non-square blocks the other way round.
    LinearWeight tall = make_weight(DType::f8_e4m3, 35, 20, 8, 3, rng);
    for (int64_t tokens : kTokenCounts) expect_linear_matches_reference(tall, tokens, rng);
}

TEST(Linear, Fp8BlockScaleIsAMultiplier) {
    // One block, all codes 1.0 (0x38), scale 4: y = 4 * sum(x).
    LinearWeight weight;
    weight.weight = Tensor::zeros(DType::f8_e4m3, {2, 3});
    for (int i = 0; i < 6; ++i) weight.weight.data<uint8_t>()[i] = 0x38;
    weight.block_rows = weight.block_cols = 128;
    weight.block_scale = Tensor::zeros(DType::f32, {1, 1});
    weight.block_scale.data<float>()[0] = 4.0f;
    Tensor x = Tensor::zeros(DType::f32, {1, 3});
    x.data<float>()[0] = 1.0f;
    x.data<float>()[1] = 2.0f;
    x.data<float>()[2] = 0.5f;
    Tensor y = Tensor::zeros(DType::f32, {1, 2});
    linear(x, weight, y);
    EXPECT_EQ(y.data<float>()[0], 14.0f);
    EXPECT_EQ(y.data<float>()[1], 14.0f);
}

// ---- rms_norm -------------------------------------------------------------------------------

void expect_rms_norm_matches(const Tensor& x_before, const Tensor& weight, float eps, const Tensor& y) {
    const int64_t rows = x_before.dim(0), d = x_before.dim(1);
    for (int64_t r = 0; r < rows; ++r) {
        double sum_squares = 0;
        for (int64_t i = 0; i < d; ++i) {
            const double v = x_before.data<float>()[r * d + i];
            sum_squares += v * v;
        }
        const double inv_rms = 1.0 / std::sqrt(sum_squares / d + eps);
        for (int64_t i = 0; i < d; ++i) {
            const double w = weight.dtype() == DType::bf16 ? bf16_value(weight.data<uint16_t>()[i])
                                                           : weight.data<float>()[i];
            const double expected = x_before.data<float>()[r * d + i] * inv_rms * w;
            // Three f32 roundings per element (the scale, x * scale, * w): 4 units is a bound
            // with a margin.
            ASSERT_NEAR(y.data<float>()[r * d + i], expected, 4 * kUnitRoundoff * std::fabs(expected))
                << "row " << r << " i " << i << " d " << d;
        }
    }
}

TEST(RmsNorm, F32Weight) {
    std::mt19937 rng(20);
    for (auto [rows, d] : {std::pair<int64_t, int64_t>{1, 1}, {5, 72}, {33, 130}, {2, 6144}}) {
        Tensor x = random_f32({rows, d}, rng, -3, 3);
        Tensor w = random_f32({d}, rng, 0.5, 1.5);
        Tensor y = Tensor::zeros(DType::f32, {rows, d});
        rms_norm(x, w, 1e-6f, y);
        expect_rms_norm_matches(x, w, 1e-6f, y);
    }
}

TEST(RmsNorm, Bf16Weight) {
    std::mt19937 rng(21);
    Tensor x = random_f32({7, 96}, rng, -3, 3);
    Tensor w = random_bf16({96}, rng, -2, 2);
    Tensor y = Tensor::zeros(DType::f32, {7, 96});
    rms_norm(x, w, 1e-6f, y);
    expect_rms_norm_matches(x, w, 1e-6f, y);
}

TEST(RmsNorm, InPlace) {
    std::mt19937 rng(22);
    for (DType weight_dtype : {DType::f32, DType::bf16}) {
        Tensor x = random_f32({20, 72}, rng, -3, 3);  // 20 rows: the parallel branch too
        Tensor before = Tensor::zeros(DType::f32, {20, 72});
        std::copy_n(x.data<float>(), x.numel(), before.data<float>());
        Tensor w = weight_dtype == DType::f32 ? random_f32({72}, rng) : random_bf16({72}, rng);
        rms_norm(x, w, 1e-6f, x);
        expect_rms_norm_matches(before, w, 1e-6f, x);
    }
}

TEST(RmsNorm, EpsMattersForSmallRows) {
    // A row of tiny values: eps dominates mean(x^2) and must be inside the square root.
    Tensor x = Tensor::zeros(DType::f32, {1, 4});
    for (int i = 0; i < 4; ++i) x.data<float>()[i] = 1e-4f;
    Tensor w = Tensor::zeros(DType::f32, {4});
    for (int i = 0; i < 4; ++i) w.data<float>()[i] = 1.0f;
    Tensor y = Tensor::zeros(DType::f32, {1, 4});
    rms_norm(x, w, 1e-6f, y);
    const double expected = 1e-4 / std::sqrt(1e-8 + 1e-6);
    EXPECT_NEAR(y.data<float>()[0], expected, 1e-6 * expected);
}

// ---- rope_neox ------------------------------------------------------------------------------

void expect_rope_matches(const RopeShape& shape, std::span<const int32_t> positions, std::mt19937& rng) {
    const int64_t tokens = static_cast<int64_t>(positions.size());
    const int64_t width = shape.n_heads * shape.head_dim, half = shape.rotary_dim / 2;
    Tensor x = random_f32({tokens, width}, rng);
    Tensor before = Tensor::zeros(DType::f32, {tokens, width});
    std::copy_n(x.data<float>(), x.numel(), before.data<float>());
    rope_neox(x, positions, shape);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t h = 0; h < shape.n_heads; ++h) {
            const float* in = before.data<float>() + t * width + h * shape.head_dim;
            const float* out = x.data<float>() + t * width + h * shape.head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const double inv_freq = std::pow(shape.theta, -2.0 * i / shape.rotary_dim);
                const double angle = positions[t] * inv_freq;
                const double a = in[i], b = in[i + half];
                const double expected_a = a * std::cos(angle) - b * std::sin(angle);
                const double expected_b = b * std::cos(angle) + a * std::sin(angle);
                // The op follows transformers and rounds inv_freq and pos * inv_freq to f32
                // (two roundings of the angle, plus one of cos/sin): the angle may be off by
                // 3u * angle + u. That moves the pair by at most that times |a| + |b|; the
                // products and sums add a few units more.
                const double angle_error = 3 * kUnitRoundoff * std::fabs(angle) + kUnitRoundoff;
                const double tolerance = (angle_error + 4 * kUnitRoundoff) * (std::fabs(a) + std::fabs(b));
                ASSERT_NEAR(out[i], expected_a, tolerance)
                    << "pos " << positions[t] << " head " << h << " i " << i;
                ASSERT_NEAR(out[i + half], expected_b, tolerance)
                    << "pos " << positions[t] << " head " << h << " i " << i + half;
            }
            for (int64_t i = shape.rotary_dim; i < shape.head_dim; ++i) {
                ASSERT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(in[i]))
                    << "dimension " << i << " beyond rotary_dim " << shape.rotary_dim << " changed";
            }
        }
    }
}

TEST(Rope, PartialNeoxMiniMaxShape) {
    // MiniMax-M2: 64 of 128 dims rotate, theta 5e6; a few heads suffice.
    std::mt19937 rng(30);
    const int32_t positions[] = {0, 1, 1000, 200000, 7, 65535};
    expect_rope_matches({3, 128, 64, 5e6}, positions, rng);
}

TEST(Rope, PartialNeoxSmallShapes) {
    std::mt19937 rng(31);
    const int32_t positions[] = {0, 1, 1000, 200000};
    expect_rope_matches({4, 32, 16, 5e6}, positions, rng);
    expect_rope_matches({2, 10, 4, 10000.0}, positions, rng);
    expect_rope_matches({1, 8, 8, 10000.0}, positions, rng);  // full rotation
}

TEST(Rope, ManyTokensTakeTheParallelPath) {
    std::mt19937 rng(32);
    std::vector<int32_t> positions(40);
    for (int i = 0; i < 40; ++i) positions[i] = 3 * i + 5;
    expect_rope_matches({2, 32, 16, 5e6}, positions, rng);
}

TEST(Rope, PositionZeroIsIdentity) {
    std::mt19937 rng(33);
    Tensor x = random_f32({1, 64}, rng);
    std::vector<float> before(x.data<float>(), x.data<float>() + 64);
    const int32_t position = 0;
    rope_neox(x, std::span<const int32_t>(&position, 1), {2, 32, 16, 5e6});
    for (int i = 0; i < 64; ++i) EXPECT_EQ(x.data<float>()[i], before[i]) << i;
}

TEST(Rope, PairsDimensionJWithJPlusHalf) {
    // Only x[0] = 1 in a head of 8 with rotary_dim 4 at position 1, theta irrelevant for i = 0:
    // x[0] -> cos 1, x[2] -> sin 1; x[1], x[3] stay 0.
    Tensor x = Tensor::zeros(DType::f32, {1, 8});
    x.data<float>()[0] = 1.0f;
    const int32_t position = 1;
    rope_neox(x, std::span<const int32_t>(&position, 1), {1, 8, 4, 10000.0});
    EXPECT_NEAR(x.data<float>()[0], std::cos(1.0), 1e-7);
    EXPECT_EQ(x.data<float>()[1], 0.0f);
    EXPECT_NEAR(x.data<float>()[2], std::sin(1.0), 1e-7);
    EXPECT_EQ(x.data<float>()[3], 0.0f);
    for (int i = 4; i < 8; ++i) EXPECT_EQ(x.data<float>()[i], 0.0f);
}

// ---- moe_route ------------------------------------------------------------------------------

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

struct Routing {
    std::vector<int32_t> ids;
    std::vector<float> weights;
};

Routing route(const std::vector<float>& logits, const Tensor& bias, int64_t k) {
    const int64_t n_experts = static_cast<int64_t>(logits.size());
    Tensor router_logits = Tensor::zeros(DType::f32, {1, n_experts});
    std::copy(logits.begin(), logits.end(), router_logits.data<float>());
    Tensor ids = Tensor::zeros(DType::i32, {1, k});
    Tensor weights = Tensor::zeros(DType::f32, {1, k});
    moe_route(router_logits, bias, k, ids, weights);
    return {std::vector<int32_t>(ids.data<int32_t>(), ids.data<int32_t>() + k),
            std::vector<float>(weights.data<float>(), weights.data<float>() + k)};
}

Tensor f32_vector(const std::vector<float>& values) {
    Tensor tensor = Tensor::zeros(DType::f32, {static_cast<int64_t>(values.size())});
    std::copy(values.begin(), values.end(), tensor.data<float>());
    return tensor;
}

// The expected weights: the UNBIASED sigmoids of `selected`, renormalised.
std::vector<double> unbiased_weights(const std::vector<float>& logits, const std::vector<int32_t>& selected) {
    double total = 0;
    for (int32_t e : selected) total += sigmoid(logits[e]);
    std::vector<double> weights;
    for (int32_t e : selected) weights.push_back(sigmoid(logits[e]) / total);
    return weights;
}

TEST(MoeRoute, BiasSelectsButDoesNotWeight) {
    // sigmoid: 0.881, 0.731, 0.5, 0.269, 0.622, 0.622. Unbiased top 2 would be {0, 1}; the bias
    // of +1 on expert 2 lifts it to 1.5, so {0, 2} are selected, weighted by 0.881 and 0.5.
    const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 0.5f};
    Routing routing = route(logits, f32_vector({0, 0, 1.0f, 0, 0, 0}), 2);
    EXPECT_EQ(routing.ids, (std::vector<int32_t>{0, 2}));
    const std::vector<double> expected = unbiased_weights(logits, {0, 2});
    // One f32 sigmoid, sum and division per weight: a few units of roundoff.
    EXPECT_NEAR(routing.weights[0], expected[0], 1e-6);
    EXPECT_NEAR(routing.weights[1], expected[1], 1e-6);
    EXPECT_NEAR(routing.weights[0] + routing.weights[1], 1.0, 1e-6);
}

TEST(MoeRoute, NegativeBiasDropsAnExpertAndIdsAreAscending) {
    // Biased scores: e0 0.881 - 1 = -0.119, e1 0.731, e3 0.269 + 0.5 = 0.769, e5 0.622 + 0.3.
    // Selection order by biased score is 5, 3, 1 (descending); the ids come back ascending.
    const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 0.5f};
    Routing routing = route(logits, f32_vector({-1.0f, 0, 0, 0.5f, 0, 0.3f}), 3);
    EXPECT_EQ(routing.ids, (std::vector<int32_t>{1, 3, 5}));
    const std::vector<double> expected = unbiased_weights(logits, {1, 3, 5});
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(routing.weights[j], expected[j], 1e-6) << j;
}

TEST(MoeRoute, Bf16Bias) {
    const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 0.5f};
    Tensor bias = Tensor::zeros(DType::bf16, {6});
    bias.data<uint16_t>()[3] = 0x3f80;  // 1.0 on expert 3: 1.269 beats everything
    Routing routing = route(logits, bias, 2);
    EXPECT_EQ(routing.ids, (std::vector<int32_t>{0, 3}));
    const std::vector<double> expected = unbiased_weights(logits, {0, 3});
    EXPECT_NEAR(routing.weights[0], expected[0], 1e-6);
    EXPECT_NEAR(routing.weights[1], expected[1], 1e-6);
}

TEST(MoeRoute, TiesPreferTheLowerId) {
    // Experts 1, 3 and 5 tie for the top; k = 2 takes 1 and 3.
    Routing routing = route({0.0f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f}, f32_vector({0, 0, 0, 0, 0, 0}), 2);
    EXPECT_EQ(routing.ids, (std::vector<int32_t>{1, 3}));
    EXPECT_NEAR(routing.weights[0], 0.5, 1e-7);
    EXPECT_NEAR(routing.weights[1], 0.5, 1e-7);
    // A tie created by the bias: e4 (0 + 0.25) and e2 (0 + 0.25) tie below e0 (1 + 0.5)... take
    // e0 and the lower of the tied pair, e2.
    Routing biased = route({1.0f, -5.0f, 0.0f, -5.0f, 0.0f}, f32_vector({0.5f, 0, 0.25f, 0, 0.25f}), 2);
    EXPECT_EQ(biased.ids, (std::vector<int32_t>{0, 2}));
}

TEST(MoeRoute, ManyTokensAgainstABruteForceReference) {
    // Random logits and biases; the reference ranks (biased score desc, id asc) in double.
    std::mt19937 rng(50);
    const int64_t n_tokens = 9, n_experts = 16, k = 4;
    Tensor logits = random_f32({n_tokens, n_experts}, rng, -4, 4);
    Tensor bias = random_f32({n_experts}, rng, -0.2f, 0.2f);
    Tensor ids = Tensor::zeros(DType::i32, {n_tokens, k});
    Tensor weights = Tensor::zeros(DType::f32, {n_tokens, k});
    moe_route(logits, bias, k, ids, weights);
    for (int64_t t = 0; t < n_tokens; ++t) {
        std::vector<int32_t> order(n_experts);
        for (int32_t e = 0; e < n_experts; ++e) order[e] = e;
        auto biased = [&](int32_t e) {
            return sigmoid(logits.data<float>()[t * n_experts + e]) + bias.data<float>()[e];
        };
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return biased(a) > biased(b); });
        std::vector<int32_t> selected(order.begin(), order.begin() + k);
        std::sort(selected.begin(), selected.end());
        std::vector<float> row(logits.data<float>() + t * n_experts, logits.data<float>() + (t + 1) * n_experts);
        const std::vector<double> expected = unbiased_weights(row, selected);
        for (int64_t j = 0; j < k; ++j) {
            EXPECT_EQ(ids.data<int32_t>()[t * k + j], selected[j]) << "token " << t << " slot " << j;
            EXPECT_NEAR(weights.data<float>()[t * k + j], expected[j], 1e-6) << "token " << t;
        }
    }
}

// NOTE: shows a bug in src/ops/moe.cpp:13 and src/ops/moe_cpu.cpp:16. The contract allows an
// undefined bias (use_routing_bias false leaves LayerWeights::routing_bias a default Tensor),
// but a default Tensor has shape {} and numel() 1, so the front's `bias.numel() == 0` check
// fails and FOURBIT_ASSERT aborts (and the CPU loop would read one float through a null
// pointer). Run in a child process so the abort fails only this test.
// Exits 0 when an undefined bias routes like no bias.
[[noreturn]] void route_with_undefined_bias_and_exit() {
    const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 0.5f};
    Routing routing = route(logits, Tensor(), 2);
    const std::vector<double> expected = unbiased_weights(logits, {0, 1});
    const bool ok = routing.ids == std::vector<int32_t>{0, 1} &&
                    std::fabs(routing.weights[0] - expected[0]) < 1e-6 &&
                    std::fabs(routing.weights[1] - expected[1]) < 1e-6;
    std::exit(ok ? 0 : 1);
}

TEST(MoeRoute, UndefinedBiasMeansNoBias) {
    // The OpenMP pool already runs threads; re-executing the binary for the child is safe.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(route_with_undefined_bias_and_exit(), ::testing::ExitedWithCode(0), "");
}

TEST(MoeRoute, EmptyBiasMeansNoBias) {
    const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, 0.5f};
    Routing routing = route(logits, Tensor::zeros(DType::f32, {0}), 2);
    EXPECT_EQ(routing.ids, (std::vector<int32_t>{0, 1}));
    const std::vector<double> expected = unbiased_weights(logits, {0, 1});
    EXPECT_NEAR(routing.weights[0], expected[0], 1e-6);
    EXPECT_NEAR(routing.weights[1], expected[1], 1e-6);
}

// ---- swiglu ---------------------------------------------------------------------------------

double silu(double v) { return v / (1.0 + std::exp(-v)); }

TEST(Swiglu, MatchesSiluTimesUp) {
    std::mt19937 rng(60);
    Tensor gate = random_f32({5, 37}, rng, -8, 8);
    gate.data<float>()[0] = 0.0f;
    gate.data<float>()[1] = 100.0f;
    gate.data<float>()[2] = -100.0f;  // exp(100) overflows f32: silu must still be ~0
    gate.data<float>()[3] = -20.0f;
    Tensor up = random_f32({5, 37}, rng, -2, 2);
    Tensor out = Tensor::zeros(DType::f32, {5, 37});
    swiglu(gate, up, out);
    for (int64_t i = 0; i < gate.numel(); ++i) {
        const double expected = silu(gate.data<float>()[i]) * up.data<float>()[i];
        // f32 exp (a few ulp from libm), an add, a divide and a multiply.
        ASSERT_NEAR(out.data<float>()[i], expected, 1e-6 * std::fabs(expected) + 1e-30) << i;
    }
}

TEST(Swiglu, InPlaceOverGate) {
    std::mt19937 rng(61);
    Tensor gate = random_f32({3, 20}, rng, -6, 6);
    Tensor up = random_f32({3, 20}, rng);
    std::vector<float> gate_before(gate.data<float>(), gate.data<float>() + 60);
    swiglu(gate, up, gate);
    for (int i = 0; i < 60; ++i) {
        const double expected = silu(gate_before[i]) * up.data<float>()[i];
        ASSERT_NEAR(gate.data<float>()[i], expected, 1e-6 * std::fabs(expected) + 1e-30) << i;
    }
}

// ---- moe_experts ----------------------------------------------------------------------------

struct ExpertSet {
    std::vector<ExpertWeights> experts;
};

ExpertSet make_experts(int n_experts, int64_t hidden, int64_t width, std::mt19937& rng) {
    ExpertSet set;
    for (int e = 0; e < n_experts; ++e) {
        ExpertWeights expert;
        expert.gate.weight = random_bf16({width, hidden}, rng);
        expert.up.weight = random_bf16({width, hidden}, rng);
        expert.down.weight = random_bf16({hidden, width}, rng);
        set.experts.push_back(expert);
    }
    return set;
}

// Runs moe_experts for `ids`/`weights` ([n_tokens, k]) and checks every output against
// sum_j weight * W2 (silu(W1 h) * W3 h) in double.
void expect_moe_experts_match(const ExpertSet& set, int64_t hidden, const std::vector<int32_t>& ids,
                              const std::vector<float>& weights, int64_t k, std::mt19937& rng) {
    const int64_t n_tokens = static_cast<int64_t>(ids.size()) / k;
    Tensor h = random_f32({n_tokens, hidden}, rng);
    Tensor id_tensor = Tensor::zeros(DType::i32, {n_tokens, k});
    std::copy(ids.begin(), ids.end(), id_tensor.data<int32_t>());
    Tensor weight_tensor = Tensor::zeros(DType::f32, {n_tokens, k});
    std::copy(weights.begin(), weights.end(), weight_tensor.data<float>());
    Tensor out = random_f32({n_tokens, hidden}, rng);  // garbage: must be overwritten
    moe_experts(h, id_tensor, weight_tensor, set.experts, out);

    for (int64_t t = 0; t < n_tokens; ++t) {
        std::vector<double> expected(hidden, 0.0), magnitude(hidden, 0.0);
        for (int64_t j = 0; j < k; ++j) {
            const ExpertWeights& expert = set.experts[ids[t * k + j]];
            const int64_t width = expert.gate.rows();
            std::vector<double> act(width);
            for (int64_t i = 0; i < width; ++i) {
                double g = 0, u = 0;
                for (int64_t c = 0; c < hidden; ++c) {
                    const double x = h.data<float>()[t * hidden + c];
                    g += weight_value(expert.gate, i, c) * x;
                    u += weight_value(expert.up, i, c) * x;
                }
                act[i] = silu(g) * u;
            }
            for (int64_t r = 0; r < hidden; ++r) {
                double down = 0, down_magnitude = 0;
                for (int64_t i = 0; i < width; ++i) {
                    down += weight_value(expert.down, r, i) * act[i];
                    down_magnitude += std::fabs(weight_value(expert.down, r, i) * act[i]);
                }
                expected[r] += weights[t * k + j] * down;
                magnitude[r] += std::fabs(weights[t * k + j]) * down_magnitude;
            }
        }
        for (int64_t r = 0; r < hidden; ++r) {
            // Three f32 matrix products in a chain (hidden and width terms) and the weighted
            // sum: relative to the sum of magnitudes, ~(hidden + width) units; 1e-5 covers it
            // with a margin at these sizes.
            ASSERT_NEAR(out.data<float>()[t * hidden + r], expected[r], 1e-5 * magnitude[r] + 1e-12)
                << "token " << t << " row " << r;
        }
    }
}

TEST(MoeExperts, DecodeTokens) {
    std::mt19937 rng(70);
    const int64_t hidden = 24, width = 20;
    ExpertSet set = make_experts(5, hidden, width, rng);
    // One token (streaming linear), then two tokens sharing expert 3.
    expect_moe_experts_match(set, hidden, {1, 3}, {0.7f, 0.3f}, 2, rng);
    expect_moe_experts_match(set, hidden, {0, 3, 3, 4}, {0.25f, 0.75f, 0.6f, 0.4f}, 2, rng);
}

TEST(MoeExperts, PrefillTokensWithSharedAndUnusedExperts) {
    // 7 tokens, k 3: expert 2 is used by 6 tokens (panel path), expert 5 by none.
    std::mt19937 rng(71);
    const int64_t hidden = 40, width = 33;
    ExpertSet set = make_experts(6, hidden, width, rng);
    const std::vector<int32_t> ids = {0, 1, 2, 1, 2, 3, 0, 2, 4, 2, 3, 4, 1, 2, 3, 0, 2, 4, 0, 1, 3};
    std::vector<float> weights(ids.size());
    std::uniform_real_distribution<float> dist(0.05f, 1.0f);
    for (float& weight : weights) weight = dist(rng);
    expect_moe_experts_match(set, hidden, ids, weights, 3, rng);
}

TEST(MoeExperts, ZeroWeightGivesNoContribution) {
    std::mt19937 rng(72);
    const int64_t hidden = 16, width = 8;
    ExpertSet set = make_experts(3, hidden, width, rng);
    Tensor h = random_f32({1, hidden}, rng);
    Tensor ids = Tensor::zeros(DType::i32, {1, 2});
    ids.data<int32_t>()[0] = 0;
    ids.data<int32_t>()[1] = 2;
    Tensor weights = Tensor::zeros(DType::f32, {1, 2});  // both weights zero
    Tensor out = random_f32({1, hidden}, rng);
    moe_experts(h, ids, weights, set.experts, out);
    for (int64_t i = 0; i < hidden; ++i) EXPECT_EQ(out.data<float>()[i], 0.0f) << i;
}

// ---- embedding and add ----------------------------------------------------------------------

TEST(Embedding, F32Table) {
    std::mt19937 rng(80);
    Tensor table = random_f32({10, 37}, rng);
    const std::vector<int32_t> ids = {3, 0, 9, 3};
    Tensor out = Tensor::zeros(DType::f32, {4, 37});
    embedding(ids, table, out);
    for (size_t t = 0; t < ids.size(); ++t) {
        for (int64_t i = 0; i < 37; ++i) {
            ASSERT_EQ(out.data<float>()[t * 37 + i], table.data<float>()[ids[t] * 37 + i]) << t << " " << i;
        }
    }
}

TEST(Embedding, Bf16Table) {
    std::mt19937 rng(81);
    Tensor table = random_bf16({12, 72}, rng);
    const std::vector<int32_t> ids = {11, 5, 5, 0, 7};
    Tensor out = Tensor::zeros(DType::f32, {5, 72});
    embedding(ids, table, out);
    for (size_t t = 0; t < ids.size(); ++t) {
        for (int64_t i = 0; i < 72; ++i) {
            ASSERT_EQ(out.data<float>()[t * 72 + i], bf16_value(table.data<uint16_t>()[ids[t] * 72 + i]))
                << t << " " << i;
        }
    }
}

TEST(Add, ElementwiseSum) {
    std::mt19937 rng(90);
    for (int64_t n : {1, 15, 16, 17, 100, 1031}) {
        Tensor x = random_f32({1, n}, rng), y = random_f32({1, n}, rng, -3, 3);
        std::vector<float> before(x.data<float>(), x.data<float>() + n);
        add(x, y);
        for (int64_t i = 0; i < n; ++i) {
            // One f32 addition, correctly rounded: exactly the double sum rounded to f32.
            ASSERT_EQ(x.data<float>()[i], static_cast<float>(static_cast<double>(before[i]) + y.data<float>()[i]))
                << "n=" << n << " i=" << i;
        }
    }
}

TEST(Add, Matrix) {
    std::mt19937 rng(91);
    Tensor x = random_f32({3, 50}, rng), y = random_f32({3, 50}, rng);
    std::vector<float> before(x.data<float>(), x.data<float>() + 150);
    add(x, y);
    for (int i = 0; i < 150; ++i) {
        ASSERT_EQ(x.data<float>()[i], static_cast<float>(static_cast<double>(before[i]) + y.data<float>()[i])) << i;
    }
}

}  // namespace
}  // namespace fourbit
