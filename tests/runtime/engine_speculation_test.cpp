// N-gram speculative decoding inside the engine's continuous batch, on the golden model:
// greedy output is identical with and without speculation over many prompts, batch sizes and
// draft lengths (drafts are really verified and some accepted), usage stays exact, and sampled
// output keeps the model's distribution (chi-square over the joint law of three tokens).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <random>

#include "model/sequence_cache.h"
#include "runtime/golden_engine.h"

namespace fourbit {
namespace {

// Prompts with repetition for the n-gram proposer to find, and without.
std::vector<std::vector<int32_t>> prompts() { return prompts_with_repetition(); }

SpeculativeConfig always_draft(int64_t k) {
    SpeculativeConfig config;
    config.num_speculative_tokens = k;
    config.prompt_lookup_min = 1;
    config.prompt_lookup_max = 4;
    config.adaptive = false;  // draft whenever there is a match: the most verification
    config.disable_batch_size = 1 << 20;
    return config;
}

TEST(EngineSpeculation, GreedyOutputIsIdenticalWithAndWithoutDrafts) {
    const int64_t n_tokens = 24;
    const std::vector<std::vector<int32_t>> all = prompts();
    std::vector<std::vector<int32_t>> expected;
    for (const auto& prompt : all) expected.push_back(greedy_alone(prompt, n_tokens));
    for (int64_t k : {1, 3, 8}) {
        for (int64_t seats : {1, 3, 16}) {
            EngineOptions options;
            options.speculative = always_draft(k);
            options.max_num_seqs = seats;
            Engine engine(golden_model(), options);
            std::vector<std::unique_ptr<Collected>> results = submit_greedy(engine, all, n_tokens);
            for (size_t i = 0; i < all.size(); ++i) {
                const FinishEvent finish = results[i]->wait();
                EXPECT_EQ(results[i]->ids(), expected[i])
                    << "prompt " << i << " k " << k << " seats " << seats;
                EXPECT_EQ(finish.completion_tokens, n_tokens) << "usage counts every token";
            }
            const EngineStats stats = settled_stats(engine);
            EXPECT_GT(stats.spec_draft_tokens, 0) << "k " << k << " seats " << seats;
            EXPECT_GT(stats.spec_accepted_tokens, 0) << "k " << k << " seats " << seats;
            EXPECT_LE(stats.spec_accepted_tokens, stats.spec_draft_tokens);
            EXPECT_EQ(stats.generation_tokens_total, n_tokens * int64_t(all.size()));
            ASSERT_EQ(stats.spec_accepted_per_position.size(), size_t(k));
            EXPECT_EQ(stats.spec_accepted_per_position[0] > 0, stats.spec_accepted_tokens > 0);
            for (size_t p = 1; p < stats.spec_accepted_per_position.size(); ++p) {
                EXPECT_LE(stats.spec_accepted_per_position[p],
                          stats.spec_accepted_per_position[p - 1])
                    << "position i counts drafts with at least i + 1 accepted";
            }
            EXPECT_EQ(stats.kv_blocks_in_use, 0);
        }
    }
}

TEST(EngineSpeculation, StopTokenInsideAcceptedDraftsEndsTheOutputThere) {
    std::vector<int32_t> prompt = prompts()[4];  // looped: drafts are accepted
    const std::vector<int32_t> expected = greedy_alone(prompt, 24);
    EngineOptions options;
    options.speculative = always_draft(8);
    Engine engine(golden_model(), options);
    GenerationRequest request = greedy(prompt, 24);
    request.ignore_eos = false;
    request.stop_token_ids = {expected[10]};
    Collected collected;
    engine.submit(request, collected.on_token(), collected.on_finish());
    const FinishEvent finish = collected.wait();
    const auto first = std::find(expected.begin(), expected.end(), expected[10]);
    EXPECT_EQ(finish.reason, "stop");
    EXPECT_EQ(collected.ids(), std::vector<int32_t>(expected.begin(), first + 1));
    EXPECT_EQ(finish.completion_tokens, int64_t(first - expected.begin()) + 1);
}

// The sampler's law, from the contract: softmax at temperature T over the top_k logits.
std::vector<double> top_k_law(std::span<const float> logits, double temperature, int64_t top_k,
                              std::vector<int32_t>& ids) {
    ids.resize(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + top_k, ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    ids.resize(top_k);
    std::vector<double> p;
    double total = 0;
    for (int32_t id : ids) total += std::exp((logits[id] - logits[ids[0]]) / temperature);
    for (int32_t id : ids) p.push_back(std::exp((logits[id] - logits[ids[0]]) / temperature) / total);
    return p;
}

TEST(EngineSpeculation, SampledOutputKeepsTheModelsDistribution) {
    // Three sampled tokens at temperature 1.5, top_k 2: 8 possible outputs, whose exact
    // probabilities come from the model directly. With single-token n-gram matches and no
    // adaptivity, every second token is a verified draft, and the third a bonus when accepted. Chi-square critical value
    // for 7 degrees of freedom at a false-alarm rate of 1e-6: 40.52.
    const double temperature = 1.5;
    const int64_t top_k = 2, n_requests = 1600;
    // Every id of the vocabulary once, shuffled: whatever the first token, a single-token
    // match exists, so the second token is always a verified draft (the prefix cache makes the
    // 1,000-token prompt cheap after the first request). Then each likely first token is made
    // to be followed, in the prompt, by its likeliest successor, so that drafts are often
    // accepted and the test exercises acceptance as well as rejection.
    std::vector<int32_t> prompt(golden_model().config().vocab_size);
    std::iota(prompt.begin(), prompt.end(), 0);
    std::shuffle(prompt.begin(), prompt.end(), std::mt19937(5));
    auto row_after = [&](const std::vector<int32_t>& ids) {
        SequenceCache cache(golden_model(), static_cast<int64_t>(ids.size()));
        return cache.forward(golden_model(), ids);
    };
    auto likeliest = [&](const std::vector<int32_t>& ids, int64_t n) {
        Tensor row = row_after(ids);
        std::vector<int32_t> order;
        top_k_law({row.data<float>(), size_t(row.dim(1))}, temperature, n, order);
        return order;
    };
    for (int32_t first : likeliest(prompt, top_k)) {
        std::vector<int32_t> longer = prompt;
        longer.push_back(first);
        const int32_t next = likeliest(longer, 1)[0];
        auto at = [&](int32_t id) { return std::find(prompt.begin(), prompt.end(), id) - prompt.begin(); };
        if (next == first) continue;
        if (at(first) + 1 == int64_t(prompt.size())) std::swap(prompt[at(first)], prompt[0]);
        std::swap(prompt[at(first) + 1], prompt[at(next)]);
    }
    std::map<std::vector<int32_t>, double> exact;
    std::vector<int32_t> first_ids, second_ids, third_ids;
    Tensor first_row = row_after(prompt);
    const std::vector<double> p1 =
        top_k_law({first_row.data<float>(), size_t(first_row.dim(1))}, temperature, top_k, first_ids);
    for (int a = 0; a < top_k; ++a) {
        std::vector<int32_t> ids = prompt;
        ids.push_back(first_ids[a]);
        Tensor second_row = row_after(ids);
        const std::vector<double> p2 = top_k_law({second_row.data<float>(), size_t(second_row.dim(1))},
                                                 temperature, top_k, second_ids);
        for (int b = 0; b < top_k; ++b) {
            std::vector<int32_t> longer = ids;
            longer.push_back(second_ids[b]);
            Tensor third_row = row_after(longer);
            const std::vector<double> p3 = top_k_law(
                {third_row.data<float>(), size_t(third_row.dim(1))}, temperature, top_k, third_ids);
            for (int c = 0; c < top_k; ++c) {
                exact[{first_ids[a], second_ids[b], third_ids[c]}] = p1[a] * p2[b] * p3[c];
            }
        }
    }

    EngineOptions options;
    options.speculative = always_draft(2);
    options.speculative.prompt_lookup_max = 1;
    options.max_num_seqs = 32;
    Engine engine(golden_model(), options);
    std::vector<std::unique_ptr<Collected>> results;
    for (int64_t i = 0; i < n_requests; ++i) {
        GenerationRequest request = greedy(prompt, 3);
        request.sampling.temperature = temperature;
        request.sampling.top_k = top_k;
        request.sampling.seed = 1000 + i;
        results.push_back(std::make_unique<Collected>());
        engine.submit(request, results.back()->on_token(), results.back()->on_finish());
    }
    std::map<std::vector<int32_t>, int64_t> counts;
    for (auto& result : results) {
        result->wait();
        ++counts[result->ids()];
    }
    double chi_square = 0;
    for (const auto& [outcome, probability] : exact) {
        const double expected = probability * n_requests;
        const double observed = counts.contains(outcome) ? double(counts[outcome]) : 0.0;
        chi_square += (observed - expected) * (observed - expected) / expected;
    }
    int64_t outside = 0;
    for (const auto& [outcome, count] : counts) outside += exact.contains(outcome) ? 0 : count;
    EXPECT_EQ(outside, 0) << "an output outside the top-2 law";
    EXPECT_LT(chi_square, 40.52);
    const EngineStats stats = settled_stats(engine);
    EXPECT_GT(stats.spec_draft_tokens, n_requests / 2) << "the test must exercise verification";
    EXPECT_GT(stats.spec_accepted_tokens, n_requests / 8) << "and acceptance";
    EXPECT_LT(stats.spec_accepted_tokens, stats.spec_draft_tokens) << "and rejection";
    RecordProperty("chi_square", std::to_string(chi_square));
    RecordProperty("draft_tokens", std::to_string(stats.spec_draft_tokens));
    RecordProperty("accepted_tokens", std::to_string(stats.spec_accepted_tokens));
}

}  // namespace
}  // namespace fourbit
