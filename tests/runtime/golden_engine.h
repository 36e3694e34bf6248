// Helpers of the engine tests: the transformers-made golden model (tests/golden/minimax_m2/
// bf16), its reference prompts, a collector of one request's events, and greedy runs alone.
#pragma once

#include <chrono>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "formats/safetensors.h"
#include "runtime/engine.h"
#include "support/greedy_reference.h"

namespace fourbit {

inline const std::string kGolden = std::string(FOURBIT_SOURCE_DIR) + "/tests/golden/minimax_m2/bf16";

inline const MiniMaxM2& golden_model() {
    static const MiniMaxM2 model(load_model_weights(kGolden));
    return model;
}

inline std::vector<int32_t> reference_ids(const std::string& name) {
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

inline GenerationRequest greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
    GenerationRequest request;
    request.prompt_ids = std::move(prompt);
    request.sampling.temperature = 0;
    request.max_tokens = max_tokens;
    request.ignore_eos = true;
    return request;
}

inline std::vector<int32_t> greedy_alone(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                         DType kv_cache_dtype = DType::f32) {
    return test_support::greedy_reference(golden_model(), prompt, max_tokens, kv_cache_dtype);
}

// The four reference prompts.
inline std::vector<std::vector<int32_t>> reference_prompts() {
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 4; ++i) prompts.push_back(reference_ids("prompt." + std::to_string(i)));
    return prompts;
}

// The reference prompts and two with repetition for the n-gram proposer to find: prompt 2 four
// times over, and prompt 3 with its first 40 tokens again.
inline std::vector<std::vector<int32_t>> prompts_with_repetition() {
    std::vector<std::vector<int32_t>> out = reference_prompts();
    std::vector<int32_t> looped;
    for (int r = 0; r < 4; ++r) {
        for (int32_t id : reference_ids("prompt.2")) looped.push_back(id);
    }
    out.push_back(looped);
    std::vector<int32_t> doubled = reference_ids("prompt.3");
    doubled.insert(doubled.end(), doubled.begin(), doubled.begin() + 40);
    out.push_back(doubled);
    return out;
}

// Submits one greedy request per prompt at once; the collectors, in prompt order.
inline std::vector<std::unique_ptr<Collected>> submit_greedy(
    Engine& engine, const std::vector<std::vector<int32_t>>& prompts, int64_t max_tokens) {
    std::vector<std::unique_ptr<Collected>> results;
    for (const auto& prompt : prompts) {
        results.push_back(std::make_unique<Collected>());
        engine.submit(greedy(prompt, max_tokens), results.back()->on_token(),
                      results.back()->on_finish());
    }
    return results;
}

// Waits until the engine thread has published the stats of its last step.
inline EngineStats settled_stats(Engine& engine) {
    EngineStats stats = engine.take_stats();
    for (int i = 0; i < 200 && (stats.requests_running != 0 || stats.kv_blocks_in_use != 0); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        stats = engine.take_stats();
    }
    return stats;
}


}  // namespace fourbit
