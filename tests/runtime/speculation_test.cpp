// N-gram speculation's token logic: the proposer's matches, vLLM's config spelling, the
// adaptive draft length, and the rejection sampler keeping the model's distribution exactly
// (a chi-square test with a stated false-alarm rate).
#include "runtime/speculation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/sampler.h"
#include "util/error.h"

namespace fourbit {
namespace {

TEST(NgramProposer, DraftsWhatFollowedTheMostRecentLongestMatch) {
    //                              0  1  2  3  4  5  6  7  8  9 10 11 12 13
    const std::vector<int32_t> tokens{1, 2, 3, 9, 9, 1, 2, 3, 4, 5, 7, 1, 2, 3};
    // Suffix [1, 2, 3] occurs at 0-2 (then 9) and at 5-7 (then 4, 5): the most recent wins.
    EXPECT_EQ(propose_ngram_draft(tokens, 2, 3, 3), (std::vector<int32_t>{4, 5, 7}));
    EXPECT_EQ(propose_ngram_draft(tokens, 2, 3, 1), (std::vector<int32_t>{4}));
    // A longer match beats a more recent shorter one: suffix [8, 1, 2] matches 3 tokens at
    // 0-2 only and 2 tokens ([1, 2]) at 4-5.
    const std::vector<int32_t> longer{8, 1, 2, 6, 1, 2, 7, 8, 1, 2};
    EXPECT_EQ(propose_ngram_draft(longer, 2, 3, 2), (std::vector<int32_t>{6, 1}));
    EXPECT_TRUE(propose_ngram_draft(tokens, 4, 6, 3).empty()) << "no match of 4 tokens";
    EXPECT_TRUE(propose_ngram_draft(std::vector<int32_t>{1, 2, 3}, 1, 3, 3).empty());
    // The draft may run into the suffix itself, and stops at the end of the tokens.
    const std::vector<int32_t> repeating{5, 6, 5, 6, 5, 6};
    EXPECT_EQ(propose_ngram_draft(repeating, 2, 2, 8), (std::vector<int32_t>{5, 6}));
}

TEST(SpeculativeConfig, ReadsVllmsSpellingAndRefusesTheRest) {
    SpeculativeConfig config = parse_speculative_config(
        R"({"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":2,"prompt_lookup_max":6})");
    EXPECT_EQ(config.num_speculative_tokens, 4);
    EXPECT_EQ(config.prompt_lookup_min, 2);
    EXPECT_EQ(config.prompt_lookup_max, 6);
    EXPECT_TRUE(config.adaptive);
    config = parse_speculative_config(R"({"method":"ngram","num_speculative_tokens":3})");
    EXPECT_EQ(config.prompt_lookup_min, 5);
    EXPECT_EQ(config.prompt_lookup_max, 5);
    config = parse_speculative_config(
        R"({"method":"ngram","num_speculative_tokens":3,"prompt_lookup_max":7,"adaptive":false})");
    EXPECT_EQ(config.prompt_lookup_min, 7);
    EXPECT_FALSE(config.adaptive);
    for (const char* bad : {R"({"method":"eagle","num_speculative_tokens":3})",
                            R"({"method":"ngram"})", R"({"method":"ngram","num_speculative_tokens":0})",
                            R"({"method":"ngram","num_speculative_tokens":"3"})",
                            R"({"method":"ngram","num_speculative_tokens":3,"typo":1})",
                            R"({"method":"ngram","num_speculative_tokens":3,"prompt_lookup_min":9,"prompt_lookup_max":4})",
                            "[1]", "{"}) {
        EXPECT_THROW(parse_speculative_config(bad), Error) << bad;
    }
    EXPECT_FALSE(speculative_profile("throughput").enabled());
    EXPECT_EQ(speculative_profile("agentic").num_speculative_tokens, 8);
    EXPECT_THROW(speculative_profile("fast"), Error);
}

TEST(DraftLength, FollowsTheBreakEvenOfExpectedTokensPerCost) {
    // k = 1 pays when 1 + a > 1 + cost, i.e. a > cost.
    EXPECT_EQ(best_draft_length(0.50, 0.55, 8), 0);
    EXPECT_GE(best_draft_length(0.60, 0.55, 8), 1);
    EXPECT_EQ(best_draft_length(1.0, 0.55, 8), 8) << "every draft taken: the longest";
    EXPECT_EQ(best_draft_length(0.0, 0.0, 8), 0) << "nothing is ever taken: no gain";
    // (1 + a + a^2) / (1 + 2c) against (1 + a) / (1 + c) at a = 0.9, c = 0.55: 1.74 vs 1.23.
    EXPECT_GE(best_draft_length(0.9, 0.55, 8), 2);
}

TEST(DraftLength, StopsDraftingWhenRejectedAndProbesAgain) {
    SpeculativeConfig config = speculative_profile("agentic");
    DraftLengthPolicy policy;
    EXPECT_GT(policy.choose(config, 1), 0) << "optimistic start";
    for (int i = 0; i < 30; ++i) policy.observe(4, 0);
    EXPECT_LT(policy.acceptance(), 0.1);
    int64_t probes = 0;
    for (int i = 0; i < 2 * DraftLengthPolicy::kProbeInterval; ++i) {
        probes += policy.choose(config, 1);
    }
    EXPECT_EQ(probes, 2) << "one single-token probe per interval";
    for (int i = 0; i < 30; ++i) policy.observe(8, 8);
    EXPECT_EQ(policy.choose(config, 1), 8);
    EXPECT_EQ(policy.choose(config, config.disable_batch_size), 0) << "a full batch: none";
    config.adaptive = false;
    for (int i = 0; i < 30; ++i) policy.observe(4, 0);
    EXPECT_EQ(policy.choose(config, 1), 8) << "not adaptive: always k_max";
}

// The rejection sampler's output distribution against the target p, by a chi-square test. The
// critical values are the 1 - 1e-6 quantiles: a correct sampler fails one run in a million.
void expect_verify_keeps_distribution(const SamplingParams& params, std::vector<float> logits,
                                      int32_t draft, double critical) {
    const int n_samples = 200000;
    // The target p: the plain sampler's empirical law is not needed; p is computed here from
    // the contract (softmax at the temperature over the kept tokens).
    std::vector<double> p(logits.size());
    double total = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
        p[i] = std::exp(logits[i] / params.temperature);
        total += p[i];
    }
    for (double& x : p) x /= total;
    if (params.top_k > 0) {
        // Keep the top_k largest (distinct logits in these cases).
        std::vector<double> sorted = p;
        std::sort(sorted.rbegin(), sorted.rend());
        const double floor = sorted[params.top_k - 1];
        double kept = 0;
        for (double& x : p) kept += (x = x >= floor ? x : 0.0);
        for (double& x : p) x /= kept;
    }
    Sampler sampler(params);
    std::vector<int64_t> counts(logits.size(), 0);
    for (int i = 0; i < n_samples; ++i) ++counts[sampler.verify(logits, draft)];
    double chi_square = 0;
    int categories = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == 0) {
            EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
            continue;
        }
        const double expected = p[i] * n_samples;
        chi_square += (counts[i] - expected) * (counts[i] - expected) / expected;
        ++categories;
    }
    EXPECT_LT(chi_square, critical) << categories - 1 << " degrees of freedom, draft " << draft;
}

TEST(RejectionSampler, KeepsTheTargetDistributionExactly) {
    SamplingParams params;
    params.temperature = 0.8;
    params.seed = 11;
    const std::vector<float> logits{1.0f, 2.5f, 0.2f, -1.0f, 2.0f, 0.7f};
    // Chi-square critical values at 1e-6 for 5 degrees of freedom: 35.89.
    expect_verify_keeps_distribution(params, logits, 1, 35.89);  // the likeliest token drafted
    expect_verify_keeps_distribution(params, logits, 3, 35.89);  // an unlikely one
    // top_k 4 keeps tokens 1, 4, 0 and 5 (3 degrees of freedom: 30.66). A draft inside the kept
    // set, and one outside it (never accepted: p = 0).
    params.top_k = 4;
    expect_verify_keeps_distribution(params, logits, 0, 30.66);
    expect_verify_keeps_distribution(params, logits, 3, 30.66);
}

TEST(RejectionSampler, GreedyTakesTheArgmaxWhateverTheDraft) {
    SamplingParams greedy;
    greedy.temperature = 0;
    Sampler sampler(greedy);
    const std::vector<float> logits{1.0f, 2.5f, 0.2f};
    EXPECT_EQ(sampler.verify(logits, 1), 1);
    EXPECT_EQ(sampler.verify(logits, 2), 1);
}

}  // namespace
}  // namespace fourbit
