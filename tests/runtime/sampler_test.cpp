// The sampler: greedy and its ties, reproducibility by seed, and the distributions that
// temperature, top_k, top_p and min_p leave, checked by frequency over many seeded draws
// against probabilities computed here; parameter validation and generation_config defaults.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "util/error.h"

namespace fourbit {
namespace {

constexpr int kDraws = 20000;

std::vector<float> log_probabilities(const std::vector<double>& p) {
    std::vector<float> logits;
    for (double value : p) logits.push_back(static_cast<float>(std::log(value)));
    return logits;
}

std::vector<int> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < draws; ++i) {
        const int32_t token = sampler.sample(logits);
        EXPECT_GE(token, 0);
        EXPECT_LT(token, static_cast<int32_t>(logits.size()));
        if (token >= 0 && token < static_cast<int32_t>(logits.size())) ++counts[token];
    }
    return counts;
}

// Every token's frequency within 4 binomial standard errors of `expected` (which sums to 1;
// a token with expected 0 must never appear). With fixed seeds this is deterministic; for a
// fresh seed a false alarm has probability ~6e-5 per token.
void expect_frequencies(const std::vector<int>& counts, const std::vector<double>& expected) {
    ASSERT_EQ(counts.size(), expected.size());
    int total = 0;
    for (int count : counts) total += count;
    for (size_t i = 0; i < counts.size(); ++i) {
        if (expected[i] == 0) {
            EXPECT_EQ(counts[i], 0) << "token " << i << " should never be drawn";
            continue;
        }
        const double frequency = static_cast<double>(counts[i]) / total;
        const double standard_error = std::sqrt(expected[i] * (1 - expected[i]) / total);
        EXPECT_NEAR(frequency, expected[i], 4 * standard_error) << "token " << i;
    }
}

SamplingParams seeded(uint64_t seed) {
    SamplingParams params;
    params.seed = seed;
    return params;
}

// ---- greedy ---------------------------------------------------------------------------------

int32_t naive_argmax(const std::vector<float>& logits) {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
        if (logits[i] > logits[best]) best = i;  // strict: the first maximum wins ties
    }
    return best;
}

TEST(Sampler, GreedyIsArgmaxWithTiesToTheLowerId) {
    SamplingParams params = seeded(1);
    params.temperature = 0.0;
    Sampler sampler(params);
    EXPECT_EQ(sampler.sample(std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1);
    EXPECT_EQ(sampler.sample(std::vector<float>{-5.0f, -1.0f, -7.0f}), 1);
    EXPECT_EQ(sampler.sample(std::vector<float>{4.0f, 4.0f, 4.0f}), 0);
    EXPECT_EQ(sampler.sample(std::vector<float>{2.0f}), 0);
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(sampler.sample(std::vector<float>{-inf, -inf, 0.5f, -inf}), 2);
    std::mt19937 rng(2);
    std::uniform_real_distribution<float> dist(-10, 10);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<float> logits(1 + trial % 50);
        for (float& logit : logits) logit = std::round(dist(rng));  // rounded: frequent ties
        ASSERT_EQ(sampler.sample(logits), naive_argmax(logits)) << "trial " << trial;
    }
}

TEST(Sampler, TopK1IsGreedyAtAnyTemperature) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-3, 3);
    for (double temperature : {0.1, 0.5, 1.0, 2.0, 100.0}) {
        SamplingParams params = seeded(4);
        params.temperature = temperature;
        params.top_k = 1;
        Sampler sampler(params);
        for (int trial = 0; trial < 200; ++trial) {
            std::vector<float> logits(2 + trial % 20);
            for (float& logit : logits) logit = std::round(dist(rng) * 2) / 2;
            ASSERT_EQ(sampler.sample(logits), naive_argmax(logits))
                << "temperature " << temperature << " trial " << trial;
        }
    }
}

// ---- seeds ----------------------------------------------------------------------------------

std::vector<int32_t> draw_sequence(uint64_t seed, const std::vector<float>& logits, int n) {
    Sampler sampler(seeded(seed));
    std::vector<int32_t> tokens;
    for (int i = 0; i < n; ++i) tokens.push_back(sampler.sample(logits));
    return tokens;
}

TEST(Sampler, SameSeedSameSequence) {
    const std::vector<float> logits(10, 0.0f);  // uniform over 10 tokens
    EXPECT_EQ(draw_sequence(42, logits, 200), draw_sequence(42, logits, 200));
}

TEST(Sampler, DifferentSeedsDiffer) {
    // Two independent uniform sequences of 200 draws over 10 tokens agree with probability 1e-200.
    const std::vector<float> logits(10, 0.0f);
    EXPECT_NE(draw_sequence(42, logits, 200), draw_sequence(43, logits, 200));
    EXPECT_NE(draw_sequence(0, logits, 200), draw_sequence(1, logits, 200));
}

// ---- distributions --------------------------------------------------------------------------

const std::vector<double> kP = {0.5, 0.3, 0.2};

TEST(Sampler, TemperatureOneSamplesSoftmax) {
    Sampler sampler(seeded(100));
    expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws), kP);
}

TEST(Sampler, SoftmaxOfShiftedLogits) {
    // Softmax is shift-invariant: logits + 50 sample the same distribution, unsorted ids too.
    std::vector<float> logits = {static_cast<float>(std::log(0.2) + 50), static_cast<float>(std::log(0.5) + 50),
                                 static_cast<float>(std::log(0.3) + 50)};
    Sampler sampler(seeded(101));
    expect_frequencies(histogram(sampler, logits, kDraws), {0.2, 0.5, 0.3});
}

TEST(Sampler, TemperatureHalfSquaresProbabilities) {
    SamplingParams params = seeded(102);
    params.temperature = 0.5;
    Sampler sampler(params);
    // exp(log p / 0.5) = p^2, normalised.
    const double total = 0.25 + 0.09 + 0.04;
    expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws),
                       {0.25 / total, 0.09 / total, 0.04 / total});
}

TEST(Sampler, TemperatureTwoFlattens) {
    SamplingParams params = seeded(103);
    params.temperature = 2.0;
    Sampler sampler(params);
    const double a = std::sqrt(0.5), b = std::sqrt(0.3), c = std::sqrt(0.2), total = a + b + c;
    expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws), {a / total, b / total, c / total});
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
    SamplingParams params = seeded(104);
    params.top_p = 0.6;  // 0.5 < 0.6 <= 0.5 + 0.3
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws), {0.5 / 0.8, 0.3 / 0.8, 0.0});
}

TEST(Sampler, TopPOnUnsortedIds) {
    // p by id: 0.1, 0.4, 0.2, 0.3. top_p 0.65 keeps 0.4 + 0.3 (ids 1 and 3).
    SamplingParams params = seeded(105);
    params.top_p = 0.65;
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities({0.1, 0.4, 0.2, 0.3}), kDraws),
                       {0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7});
}

// Without top_k the sampler never sorts the whole vocabulary (it keeps tokens by probability
// octave and sorts only the octave top_p ends in); what it keeps must still be the sorted
// prefix, computed here by a full sort: a wide vocabulary with ties across octaves, top_p
// ending inside a crowded octave, then min_p's floor.
TEST(Sampler, TopPAndMinPOverAWideVocabularyKeepTheSortedPrefix) {
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> logits(1000);
    for (float& x : logits) x = std::round(normal(rng) * 4.0f) / 4.0f;  // many ties
    for (auto [top_p, min_p] : {std::pair{0.8, 0.0}, {0.5, 0.05}, {1.0, 0.02}}) {
        std::vector<int32_t> order(logits.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
        std::vector<double> p(logits.size());
        double total = 0;
        for (size_t i = 0; i < logits.size(); ++i) total += p[i] = std::exp(double(logits[i]) - logits[order[0]]);
        size_t kept = 0;
        double mass = 0;
        while (kept < order.size() && (kept == 0 || mass < top_p)) mass += p[order[kept++]] / total;
        std::vector<double> expected(logits.size(), 0.0);
        double kept_mass = 0;
        for (size_t i = 0; i < kept; ++i) {
            if (p[order[i]] >= min_p * p[order[0]]) kept_mass += expected[order[i]] = p[order[i]];
        }
        for (double& e : expected) e /= kept_mass;
        SamplingParams params = seeded(300);
        params.top_p = top_p;
        params.min_p = min_p;
        Sampler sampler(params);
        const std::vector<int> counts = histogram(sampler, logits, kDraws);
        // The support exactly (a token outside the prefix never drawn), and the frequencies of
        // the tokens likely enough for a binomial's normal bound (4 standard errors).
        for (size_t i = 0; i < logits.size(); ++i) {
            if (expected[i] == 0) {
                EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the prefix";
            } else if (expected[i] >= 0.01) {
                const double frequency = static_cast<double>(counts[i]) / kDraws;
                EXPECT_NEAR(frequency, expected[i], 4 * std::sqrt(expected[i] * (1 - expected[i]) / kDraws))
                    << "token " << i << ", top_p " << top_p << ", min_p " << min_p;
            }
        }
    }
}

TEST(Sampler, TopPAppliesAfterTemperature) {
    // At temperature 0.5 token 0 alone has 0.25 / 0.38 = 0.66 >= 0.6, so only it survives.
    SamplingParams params = seeded(106);
    params.temperature = 0.5;
    params.top_p = 0.6;
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities(kP), 2000), {1.0, 0.0, 0.0});
}

TEST(Sampler, TopKRestricts) {
    SamplingParams params = seeded(107);
    params.top_k = 2;
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws), {0.5 / 0.8, 0.3 / 0.8, 0.0});
}

TEST(Sampler, TopKOnUnsortedIds) {
    SamplingParams params = seeded(108);
    params.top_k = 3;
    Sampler sampler(params);
    // p by id: 0.05, 0.4, 0.1, 0.3, 0.15: the top 3 are ids 1, 3, 4.
    expect_frequencies(histogram(sampler, log_probabilities({0.05, 0.4, 0.1, 0.3, 0.15}), kDraws),
                       {0.0, 0.4 / 0.85, 0.0, 0.3 / 0.85, 0.15 / 0.85});
}

TEST(Sampler, TopKAtLeastVocabularyKeepsAll) {
    for (int64_t top_k : {int64_t{-1}, int64_t{0}, int64_t{3}, int64_t{50}}) {
        SamplingParams params = seeded(109);
        params.top_k = top_k;
        Sampler sampler(params);
        expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws), kP);
    }
}

TEST(Sampler, MinPKeepsTokensAboveAFractionOfTheTop) {
    SamplingParams params = seeded(110);
    params.min_p = 0.5;  // keeps p >= 0.25: tokens 0 (0.5) and 1 (0.3), not 2 (0.2)
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities(kP), kDraws), {0.5 / 0.8, 0.3 / 0.8, 0.0});
}

TEST(Sampler, MinPOnUnsortedIds) {
    // p by id: 0.2, 0.4, 0.1, 0.3. min_p 0.4 keeps p >= 0.16: ids 0, 1, 3.
    SamplingParams params = seeded(111);
    params.min_p = 0.4;
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities({0.2, 0.4, 0.1, 0.3}), kDraws),
                       {0.2 / 0.9, 0.4 / 0.9, 0.0, 0.3 / 0.9});
}

TEST(Sampler, MinPOneKeepsOnlyTheTop) {
    SamplingParams params = seeded(112);
    params.min_p = 1.0;
    Sampler sampler(params);
    expect_frequencies(histogram(sampler, log_probabilities({0.2, 0.5, 0.3}), 2000), {0.0, 1.0, 0.0});
}

TEST(Sampler, NegativeInfinityLogitsAreNeverDrawn) {
    const float inf = std::numeric_limits<float>::infinity();
    Sampler sampler(seeded(113));
    expect_frequencies(histogram(sampler, {-inf, 0.0f, -inf, 0.0f}, kDraws), {0.0, 0.5, 0.0, 0.5});
}

// ---- validation -----------------------------------------------------------------------------

// The Error message of `params.validate()`, or "" if it passed.
std::string validation_error(const SamplingParams& params) {
    try {
        params.validate();
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

TEST(SamplingParams, RejectsOutOfRangeWithTheFieldName) {
    struct Case {
        const char* field;
        SamplingParams params;
    };
    std::vector<Case> cases;
    SamplingParams p;
    p.temperature = -1;
    cases.push_back({"temperature", p});
    p = {};
    p.temperature = std::numeric_limits<double>::quiet_NaN();
    cases.push_back({"temperature", p});
    p = {};
    p.temperature = std::numeric_limits<double>::infinity();
    cases.push_back({"temperature", p});
    p = {};
    p.top_p = 0;
    cases.push_back({"top_p", p});
    p = {};
    p.top_p = 1.5;
    cases.push_back({"top_p", p});
    p = {};
    p.min_p = 2;
    cases.push_back({"min_p", p});
    p = {};
    p.min_p = -0.1;
    cases.push_back({"min_p", p});
    p = {};
    p.top_k = -2;
    cases.push_back({"top_k", p});
    for (const Case& c : cases) {
        const std::string message = validation_error(c.params);
        EXPECT_NE(message.find(c.field), std::string::npos)
            << "expected an error naming " << c.field << ", got '" << message << "'";
    }
}

TEST(SamplingParams, AcceptsTheEdgesOfTheRanges) {
    SamplingParams p;
    p.temperature = 0;
    p.top_k = -1;
    p.top_p = 1.0;
    p.min_p = 1.0;
    EXPECT_EQ(validation_error(p), "");
    p = {};
    p.top_p = 1e-9;
    p.min_p = 0;
    p.top_k = 0;
    EXPECT_EQ(validation_error(p), "");
}

TEST(SamplingParams, SamplerConstructorValidates) {
    SamplingParams p;
    p.top_p = 1.5;
    EXPECT_THROW(Sampler{p}, Error);
}

// ---- generation_config defaults -------------------------------------------------------------

TEST(SamplingDefaults, DoSampleFalseMeansGreedy) {
    GenerationDefaults defaults;
    defaults.temperature = 0.7;
    defaults.top_k = 40;
    defaults.top_p = 0.95;
    defaults.do_sample = false;
    SamplingParams params = sampling_defaults(defaults);
    EXPECT_EQ(params.temperature, 0.0);
    EXPECT_EQ(params.top_k, 40);
    EXPECT_EQ(params.top_p, 0.95);
    EXPECT_EQ(params.min_p, 0.0);
    // And the sampler built from it is greedy.
    Sampler sampler(params);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(std::vector<float>{0.1f, 0.3f, 0.2f, 0.3f}), 1);
}

TEST(SamplingDefaults, DoSampleTrueKeepsTheValues) {
    GenerationDefaults defaults;
    defaults.temperature = 0.7;
    defaults.top_k = 40;
    defaults.top_p = 0.95;
    defaults.min_p = 0.01;
    defaults.do_sample = true;
    SamplingParams params = sampling_defaults(defaults);
    EXPECT_EQ(params.temperature, 0.7);
    EXPECT_EQ(params.top_k, 40);
    EXPECT_EQ(params.top_p, 0.95);
    EXPECT_EQ(params.min_p, 0.01);
}

TEST(SamplingDefaults, AbsentFieldsKeepTheSamplerDefaults) {
    SamplingParams params = sampling_defaults(GenerationDefaults{});
    EXPECT_EQ(params.temperature, 1.0);
    EXPECT_EQ(params.top_k, 0);
    EXPECT_EQ(params.top_p, 1.0);
    EXPECT_EQ(params.min_p, 0.0);
    EXPECT_FALSE(params.seed.has_value());
}

}  // namespace
}  // namespace fourbit
