// Sampling from a row's most likely tokens (what a device step sends back) picks exactly what
// sampling from the whole row picks, for every sampler whose tokens_needed they cover: the same
// seeded draws, the same verification of drafts inside and outside the candidates.
#include "runtime/step_logits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/top_k.h"

namespace fourbit {
namespace {

// Rows of random logits with ties (values on a coarse grid), as a host tensor [rows, n].
Tensor random_logits(int64_t rows, int64_t n, std::mt19937& rng) {
    Tensor logits = Tensor::zeros(DType::f32, {rows, n});
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (int64_t i = 0; i < logits.numel(); ++i) {
        logits.data<float>()[i] = std::round(normal(rng) * 8.0f) / 8.0f;
    }
    return logits;
}

StepLogits candidates_of(const Tensor& logits, int64_t k) {
    TopLogits top{Tensor::zeros(DType::f32, {logits.dim(0), k}), Tensor::zeros(DType::i32, {logits.dim(0), k})};
    top_k_rows(logits, k, top.values, top.ids);
    return StepLogits::candidates(std::move(top));
}

SamplingParams params(double temperature, int64_t top_k, double top_p, double min_p) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = 1234;
    return p;
}

TEST(StepLogits, CandidatesSampleAndVerifyAsTheWholeRow) {
    std::mt19937 rng(3);
    const int64_t rows = 50, n = 5000;
    const Tensor logits = random_logits(rows, n, rng);
    const StepLogits full = StepLogits::full(logits);
    for (const SamplingParams& p : {params(0.0, 0, 1.0, 0.0), params(1.0, 40, 0.95, 0.0),
                                    params(0.7, 1, 1.0, 0.0), params(1.3, 64, 1.0, 0.05),
                                    params(1.0, 20, 0.5, 0.0)}) {
        Sampler whole(p), picked(p);
        ASSERT_GT(whole.tokens_needed(), 0);
        // The fewest candidates the sampler needs, and the most a step may send.
        for (int64_t k : {whole.tokens_needed(), kTopKMax}) {
            const StepLogits top = candidates_of(logits, k);
            for (int64_t r = 0; r < rows; ++r) {
                ASSERT_EQ(top.sample(picked, r), full.sample(whole, r)) << "row " << r << ", k " << k;
                // A draft among the candidates (the likeliest) and one that is not (the least).
                const float* row = logits.data<float>() + r * n;
                const int32_t likeliest = static_cast<int32_t>(std::max_element(row, row + n) - row);
                const int32_t least = static_cast<int32_t>(std::min_element(row, row + n) - row);
                for (int32_t draft : {likeliest, least}) {
                    ASSERT_EQ(top.verify(picked, r, draft), full.verify(whole, r, draft))
                        << "row " << r << ", draft " << draft;
                }
            }
        }
    }
}

TEST(StepLogits, TokensNeededCoverTheKeptSetOnly) {
    EXPECT_EQ(Sampler(params(0.0, 0, 1.0, 0.0)).tokens_needed(), 1);
    EXPECT_EQ(Sampler(params(0.0, 50, 0.9, 0.0)).tokens_needed(), 1);
    EXPECT_EQ(Sampler(params(0.8, 40, 0.95, 0.0)).tokens_needed(), 40);
    EXPECT_EQ(Sampler(params(1.0, 0, 0.95, 0.0)).tokens_needed(), 0);  // the whole row counts
}

TEST(StepLogits, NonFiniteRowsAreFoundEitherWay) {
    std::mt19937 rng(4);
    Tensor logits = random_logits(3, 300, rng);
    logits.data<float>()[300 + 17] = std::nanf("");
    const StepLogits full = StepLogits::full(logits), top = candidates_of(logits, 8);
    for (const StepLogits* step : {&full, &top}) {
        EXPECT_TRUE(step->finite(0, 1));
        EXPECT_FALSE(step->finite(0, 2));
        EXPECT_FALSE(step->finite(1, 1));
        EXPECT_TRUE(step->finite(2, 1));
    }
    EXPECT_TRUE(top.row(0).empty());
    EXPECT_EQ(full.row(2).size(), 300u);
}

}  // namespace
}  // namespace fourbit
