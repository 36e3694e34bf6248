// The serving engine on the transformers-made golden model (tests/golden/minimax_m2/bf16):
// greedy output through the engine equals transformers' continuation, concurrent requests
// under chunked prefill equal each run alone, and stops, cancellation, logprobs and refusals.
#include "runtime/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>

#include "formats/safetensors.h"
#include "runtime/generate.h"
#include "util/error.h"

namespace fourbit {
namespace {

const std::string kGolden = std::string(FOURBIT_SOURCE_DIR) + "/tests/golden/minimax_m2/bf16";

const MiniMaxM2& golden_model() {
    static const MiniMaxM2 model(load_model_weights(kGolden));
    return model;
}

std::vector<int32_t> reference_ids(const std::string& name) {
    static auto file = SafetensorsFile::open(kGolden + "/reference.safetensors");
    Tensor tensor = file->tensor(name);
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < tensor.numel(); ++i) ids.push_back(int32_t(tensor.data<int64_t>()[i]));
    return ids;
}

// One request's events, collected from the engine thread.
struct Collected {
    std::mutex mutex;
    std::condition_variable done_signal;
    std::vector<TokenEvent> tokens;
    std::optional<FinishEvent> finish;

    TokenCallback on_token() {
        return [this](const TokenEvent& event) {
            std::lock_guard lock(mutex);
            tokens.push_back(event);
        };
    }
    FinishCallback on_finish() {
        return [this](const FinishEvent& event) {
            std::lock_guard lock(mutex);
            EXPECT_FALSE(finish.has_value()) << "finished twice";
            finish = event;
            done_signal.notify_all();
        };
    }
    FinishEvent wait() {
        std::unique_lock lock(mutex);
        EXPECT_TRUE(done_signal.wait_for(lock, std::chrono::seconds(60),
                                         [&] { return finish.has_value(); }));
        return *finish;
    }
    std::vector<int32_t> ids() {
        std::lock_guard lock(mutex);
        std::vector<int32_t> out;
        for (const TokenEvent& event : tokens) out.push_back(event.token_id);
        return out;
    }
};

GenerationRequest greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
    GenerationRequest request;
    request.prompt_ids = std::move(prompt);
    request.sampling.temperature = 0;
    request.max_tokens = max_tokens;
    request.ignore_eos = true;
    return request;
}

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
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 4; ++i) prompts.push_back(reference_ids("prompt." + std::to_string(i)));
    std::vector<std::unique_ptr<Collected>> results;
    for (const auto& prompt : prompts) {
        results.push_back(std::make_unique<Collected>());
        engine.submit(greedy(prompt, 12), results.back()->on_token(), results.back()->on_finish());
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(results[i]->wait().reason, "length");
        SamplingParams params;
        params.temperature = 0;
        Sampler sampler(params);
        GenerateOptions alone;
        alone.max_tokens = 12;
        alone.ignore_eos = true;
        EXPECT_EQ(results[i]->ids(), generate(golden_model(), prompts[i], alone, sampler).token_ids)
            << "request " << i;
    }
    EngineStats stats = engine.take_stats();
    EXPECT_EQ(stats.requests_running, 0);
    EXPECT_EQ(stats.requests_waiting, 0);
    EXPECT_EQ(stats.kv_tokens_in_use, 0);
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
    for (int i = 0; i < 100 && engine.take_stats().kv_tokens_in_use != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EngineStats stats = engine.take_stats();
    EXPECT_EQ(stats.kv_tokens_in_use, 0);
    EXPECT_EQ(stats.requests_running, 0);
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
    KvCache cache(golden_model().config());
    SequenceInput input{request.prompt_ids, &cache, false};
    Tensor logits = golden_model().forward(std::span<const SequenceInput>(&input, 1));
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
