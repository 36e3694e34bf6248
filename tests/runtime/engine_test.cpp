// The serving engine on the transformers-made golden model (tests/golden/minimax_m2/bf16):
// greedy output through the engine equals transformers' continuation, concurrent requests
// under chunked prefill equal each run alone, preemption under a small KV pool and prefix-cache
// hits change no output, and stops, cancellation, logprobs and refusals.
#include "runtime/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "model/sequence_cache.h"
#include "runtime/golden_engine.h"
#include "util/error.h"

namespace fourbit {
namespace {

TEST(Engine, GreedyOutputEqualsTransformers) {
    Engine engine(golden_model(), {});
    std::vector<int32_t> expected = reference_ids("greedy.0");
    Collected collected;
    engine.submit(greedy(reference_ids("prompt.0"), int64_t(expected.size())), collected.on_token(),
                  collected.on_finish());
    FinishEvent finish = collected.wait();
    EXPECT_EQ(collected.ids(), expected);
    EXPECT_EQ(finish.reason, "length");
    EXPECT_EQ(finish.prompt_tokens, int64_t(reference_ids("prompt.0").size()));
    EXPECT_EQ(finish.completion_tokens, int64_t(expected.size()));
}

TEST(Engine, ConcurrentRequestsWithChunkedPrefillEqualEachAlone) {
    EngineOptions options;
    options.max_num_batched_tokens = 5;  // prompts of 19 and 64 tokens take several steps
    options.max_num_seqs = 3;            // the fourth waits for a free slot
    Engine engine(golden_model(), options);
    const std::vector<std::vector<int32_t>> prompts = reference_prompts();
    std::vector<std::unique_ptr<Collected>> results = submit_greedy(engine, prompts, 12);
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(results[i]->wait().reason, "length");
        EXPECT_EQ(results[i]->ids(), greedy_alone(prompts[i], 12)) << "request " << i;
    }
    EngineStats stats = engine.take_stats();
    EXPECT_EQ(stats.requests_running, 0);
    EXPECT_EQ(stats.requests_waiting, 0);
    EXPECT_EQ(stats.kv_blocks_in_use, 0);
    EXPECT_EQ(stats.generation_tokens_total, 4 * 12);
    int64_t prompt_total = 0;
    for (const auto& prompt : prompts) prompt_total += int64_t(prompt.size());
    EXPECT_EQ(stats.prompt_tokens_total, prompt_total);
    EXPECT_EQ(stats.requests_finished_total, 4);
    EXPECT_EQ(stats.time_to_first_token_s.size(), 4u);
    EXPECT_EQ(stats.inter_token_s.size(), 4u * 11);
}

TEST(Engine, StopTokenEndsTheOutputAndIsPartOfIt) {
    Engine engine(golden_model(), {});
    std::vector<int32_t> expected = reference_ids("greedy.0");
    GenerationRequest request = greedy(reference_ids("prompt.0"), 32);
    request.ignore_eos = false;
    request.stop_token_ids = {expected[2]};
    Collected collected;
    engine.submit(request, collected.on_token(), collected.on_finish());
    EXPECT_EQ(collected.wait().reason, "stop");
    const auto first_stop = std::find(expected.begin(), expected.end(), expected[2]);
    EXPECT_EQ(collected.ids(), std::vector<int32_t>(expected.begin(), first_stop + 1));
}

TEST(Engine, CancelledRequestFinishesOnceAndFreesItsCache) {
    Engine engine(golden_model(), {});
    Collected collected;
    std::promise<void> first_token;
    bool signalled = false;
    uint64_t id = engine.submit(
        greedy(reference_ids("prompt.3"), 2000),
        [&](const TokenEvent& event) {
            collected.on_token()(event);
            if (!signalled) {
                signalled = true;
                first_token.set_value();
            }
        },
        collected.on_finish());
    first_token.get_future().wait();
    engine.cancel(id);
    FinishEvent finish = collected.wait();
    EXPECT_EQ(finish.reason, "cancelled");
    EXPECT_LT(finish.completion_tokens, 2000);
    engine.cancel(id);  // a finished id is ignored
    for (int i = 0; i < 100 && engine.take_stats().kv_blocks_in_use != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EngineStats stats = engine.take_stats();
    EXPECT_EQ(stats.kv_blocks_in_use, 0);
    EXPECT_EQ(stats.requests_running, 0);
}

TEST(Engine, PreemptionUnderASmallPoolChangesNoOutput) {
    // Four requests (prompts of 7, 19, 12 and 64 tokens, 40 outputs each: 34 blocks of 8 in
    // all) share a pool of 13 blocks, just one full context of 104 tokens: they cannot all hold
    // their blocks at once, so the newest are preempted and recomputed. Greedy outputs must
    // still equal each request run alone.
    EngineOptions options;
    options.max_model_len = 104;
    options.kv_block_size = 8;
    options.num_kv_blocks = 13;
    options.max_num_batched_tokens = 16;
    Engine engine(golden_model(), options);
    const std::vector<std::vector<int32_t>> prompts = reference_prompts();
    std::vector<std::unique_ptr<Collected>> results = submit_greedy(engine, prompts, 40);
    for (size_t i = 0; i < prompts.size(); ++i) {
        FinishEvent finish = results[i]->wait();
        EXPECT_EQ(finish.reason, "length");
        EXPECT_EQ(finish.completion_tokens, 40);
        EXPECT_EQ(results[i]->ids(), greedy_alone(prompts[i], 40)) << "request " << i;
    }
    EngineStats stats = settled_stats(engine);
    EXPECT_GT(stats.num_preemptions, 0) << "the pool was meant to run out";
    EXPECT_EQ(stats.kv_blocks_in_use, 0);
    EXPECT_EQ(stats.kv_blocks_total, 13);
    EXPECT_EQ(stats.generation_tokens_total, 4 * 40) << "recomputation generates nothing twice";
}

TEST(Engine, RepeatedPrefixIsServedFromTheCache) {
    // A second request that repeats the first one's prompt and output and adds a turn (what an
    // agent sends every turn) finds the full blocks of that history cached: the hit count is
    // every full block of it, and the output is unchanged.
    EngineOptions options;
    options.kv_block_size = 16;
    Engine engine(golden_model(), options);
    std::vector<int32_t> first_prompt = reference_ids("prompt.3");
    Collected first;
    engine.submit(greedy(first_prompt, 8), first.on_token(), first.on_finish());
    first.wait();
    std::vector<int32_t> second_prompt = first_prompt;
    for (int32_t id : first.ids()) second_prompt.push_back(id);
    for (int32_t id : reference_ids("prompt.1")) second_prompt.push_back(id);
    const EngineStats before = settled_stats(engine);
    Collected second;
    engine.submit(greedy(second_prompt, 6), second.on_token(), second.on_finish());
    second.wait();
    const EngineStats after = settled_stats(engine);
    // The first request's KV covers its prompt and all outputs but the last (never fed back).
    const int64_t computed_before = int64_t(first_prompt.size()) + 8 - 1;
    const int64_t expected_hit = computed_before / 16 * 16;
    ASSERT_GT(expected_hit, 0);
    EXPECT_EQ(after.prefix_cache_hits - before.prefix_cache_hits, expected_hit);
    EXPECT_EQ(after.prefix_cache_queries - before.prefix_cache_queries,
              int64_t(second_prompt.size()));
    EXPECT_EQ(second.ids(), greedy_alone(second_prompt, 6));
    EXPECT_EQ(after.prompt_tokens_total - before.prompt_tokens_total,
              int64_t(second_prompt.size()))
        << "usage counts the whole prompt, cached or not";
}

TEST(Engine, PrefixCachingOffComputesEverything) {
    EngineOptions options;
    options.enable_prefix_caching = false;
    Engine engine(golden_model(), options);
    for (int round = 0; round < 2; ++round) {
        Collected collected;
        engine.submit(greedy(reference_ids("prompt.3"), 2), collected.on_token(),
                      collected.on_finish());
        collected.wait();
    }
    EXPECT_EQ(settled_stats(engine).prefix_cache_hits, 0);
}

TEST(Engine, RefusesAPoolThatCannotHoldOneContext) {
    EngineOptions options;
    options.max_model_len = 100;
    options.kv_block_size = 16;
    options.num_kv_blocks = 6;  // 96 positions < 100
    try {
        Engine engine(golden_model(), options);
        FAIL() << "a pool smaller than one context was accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("6 blocks"), std::string::npos) << message;
        EXPECT_NE(message.find("max_model_len 100"), std::string::npos) << message;
    }
}

// A bf16 KV cache holds twice the blocks in the same memory; batching, chunked prefill and
// paging over it change no output (each request equals a bf16 cache of its own); and its
// rounding (2^-9 of each key and value at most) moves the logits by a small part of their
// spread.
TEST(Engine, Bf16KvCacheHoldsTwiceTheBlocksAndBatchesLikeItsOwnCache) {
    const MiniMaxM2Config& config = golden_model().config();
    EngineOptions options;
    options.kv_block_size = 16;
    options.max_model_len = 256;
    options.kv_cache_memory_bytes = 40 * KvPool::bytes_per_block(config, 16, DType::f32);
    EXPECT_EQ(Engine(golden_model(), options).options().num_kv_blocks, 40);
    options.kv_cache_dtype = DType::bf16;
    options.max_num_batched_tokens = 7;  // prompts of 19 and 64 tokens take several steps
    Engine engine(golden_model(), options);
    EXPECT_EQ(engine.options().num_kv_blocks, 80);
    const std::vector<std::vector<int32_t>> prompts = reference_prompts();
    std::vector<std::unique_ptr<Collected>> results = submit_greedy(engine, prompts, 12);
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(results[i]->wait().reason, "length");
        EXPECT_EQ(results[i]->ids(), greedy_alone(prompts[i], 12, DType::bf16)) << "request " << i;
    }
}

TEST(Engine, AKvPoolOfAnotherTypeIsRefusedByName) {
    try {
        KvPool pool(golden_model().config(), 4, 16, Device::host(), DType::f16);
        FAIL() << "an f16 pool was made";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("f32 or bf16"), std::string::npos) << error.what();
    }
}

TEST(Engine, Bf16KvCacheMovesTheLogitsByLittle) {
    const std::vector<int32_t> prompt = reference_ids("prompt.1");
    SequenceCache f32(golden_model(), int64_t(prompt.size()), 16, DType::f32);
    SequenceCache bf16(golden_model(), int64_t(prompt.size()), 16, DType::bf16);
    const Tensor exact = f32.forward(golden_model(), prompt, LogitRows::all);
    const Tensor rounded = bf16.forward(golden_model(), prompt, LogitRows::all);
    double sum = 0, sum_sq = 0, worst = 0;
    for (int64_t i = 0; i < exact.numel(); ++i) {
        const double x = exact.data<float>()[i];
        sum += x;
        sum_sq += x * x;
        worst = std::max(worst, std::fabs(rounded.data<float>()[i] - x));
    }
    const double mean = sum / double(exact.numel());
    const double spread = std::sqrt(sum_sq / double(exact.numel()) - mean * mean);
    EXPECT_GT(worst, 0.0) << "the bf16 cache rounded nothing";
    // Measured: 0.8% of the spread on this prompt (the largest of its 19 x vocabulary logits);
    // 2% leaves room for other platforms' f32 summation orders, not for a wrong row or rounding.
    EXPECT_LT(worst, 0.02 * spread) << "largest change " << worst << ", spread " << spread;
}

TEST(Engine, LogprobsAreTheModelsLogSoftmax) {
    Engine engine(golden_model(), {});
    GenerationRequest request = greedy(reference_ids("prompt.1"), 1);
    request.logprobs = true;
    request.top_logprobs = 3;
    Collected collected;
    engine.submit(request, collected.on_token(), collected.on_finish());
    collected.wait();
    ASSERT_EQ(collected.tokens.size(), 1u);
    const TokenEvent& event = collected.tokens[0];
    // The same row computed directly, normalised in double.
    SequenceCache cache(golden_model(), static_cast<int64_t>(request.prompt_ids.size()));
    Tensor logits = cache.forward(golden_model(), request.prompt_ids);
    double total = 0;
    for (int64_t i = 0; i < logits.dim(1); ++i) total += std::exp(double(logits.data<float>()[i]));
    auto expected = [&](int32_t id) { return double(logits.data<float>()[id]) - std::log(total); };
    EXPECT_NEAR(event.logprob, expected(event.token_id), 1e-4);
    ASSERT_EQ(event.top_logprobs.size(), 3u);
    EXPECT_EQ(event.top_logprobs[0].first, event.token_id) << "greedy takes the most likely";
    for (const auto& [id, logprob] : event.top_logprobs) EXPECT_NEAR(logprob, expected(id), 1e-4);
    EXPECT_GE(event.top_logprobs[0].second, event.top_logprobs[1].second);
    EXPECT_GE(event.top_logprobs[1].second, event.top_logprobs[2].second);
}

TEST(Engine, RefusesWhatCannotRunBeforeQueueing) {
    EngineOptions options;
    options.max_model_len = 100;
    Engine engine(golden_model(), options);
    auto submit = [&](GenerationRequest request) { engine.submit(std::move(request), {}, {}); };
    EXPECT_THROW(submit(greedy({}, 4)), Error);
    EXPECT_THROW(submit(greedy({1, 2, 3}, 0)), Error);
    EXPECT_THROW(submit(greedy({1, 2, 3}, 98)), Error) << "3 + 98 > 100";
    EXPECT_THROW(submit(greedy({1, 99999}, 4)), Error) << "outside the vocabulary";
    GenerationRequest bad_sampling = greedy({1, 2}, 4);
    bad_sampling.sampling.top_p = 0;
    EXPECT_THROW(submit(bad_sampling), Error);
    try {
        submit(greedy(std::vector<int32_t>(60, 1), 50));
        FAIL();
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("60"), std::string::npos) << message;
        EXPECT_NE(message.find("50"), std::string::npos) << message;
        EXPECT_NE(message.find("100"), std::string::npos) << message;
    }
    EXPECT_EQ(engine.take_stats().requests_waiting, 0);
}

}  // namespace
}  // namespace fourbit
