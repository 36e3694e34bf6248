// The serving engine on a CUDA device: continuous batching, paged KV on the device, preemption
// and n-gram speculative decoding (the verify step is the forward's all-rows logits, recorded
// as a CUDA graph like any step of up to 64 tokens). On the golden model the CUDA forward
// agrees with the CPU to ~1e-6 of the logits' spread (tests/model/cuda_parity_test.cpp) and the
// smallest top-2 gap on these paths is far above that, so greedy output must equal the CPU's
// token for token. Skips without a GPU; runs in tools/gpu/check.sh.
#include <gtest/gtest.h>

#include "runtime/golden_engine.h"
#include "tensor/cuda_memory.h"

namespace fourbit {
namespace {

const MiniMaxM2& golden_model_on_gpu() {
    static const MiniMaxM2 model = [] {
        LoadOptions load;
        load.device = Device::cuda(0);
        return MiniMaxM2(load_model_weights(kGolden, load));
    }();
    return model;
}

class EngineCuda : public ::testing::Test {
protected:
    void SetUp() override {
        if (!cuda_compiled()) GTEST_SKIP() << "built without the CUDA backend";
        if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    }
};

// Prompts with repetition for the n-gram proposer to find, and without.
std::vector<std::vector<int32_t>> prompts() { return prompts_with_repetition(); }

TEST_F(EngineCuda, GreedyWithAndWithoutSpeculationEqualsTheCpu) {
    const int64_t n_tokens = 24;
    const std::vector<std::vector<int32_t>> all = prompts();
    std::vector<std::vector<int32_t>> expected;
    for (const auto& prompt : all) expected.push_back(greedy_alone(prompt, n_tokens));
    for (int64_t k : {0, 1, 4, 8}) {
        for (int64_t seats : {1, 5}) {
            EngineOptions options;
            options.max_num_seqs = seats;
            options.max_model_len = 512;
            options.num_kv_blocks = 64;
            if (k > 0) {
                options.speculative.num_speculative_tokens = k;
                options.speculative.prompt_lookup_min = 1;
                options.speculative.prompt_lookup_max = 4;
                options.speculative.adaptive = false;  // draft at every match: most verification
                options.speculative.disable_batch_size = 1 << 20;
            }
            Engine engine(golden_model_on_gpu(), options);
            auto results = submit_greedy(engine, all, n_tokens);
            for (size_t i = 0; i < all.size(); ++i) {
                const FinishEvent finish = results[i]->wait();
                EXPECT_EQ(results[i]->ids(), expected[i]) << "prompt " << i << " k " << k << " seats " << seats;
                EXPECT_EQ(finish.completion_tokens, n_tokens);
            }
            const EngineStats stats = settled_stats(engine);
            if (k > 0) {
                EXPECT_GT(stats.spec_accepted_tokens, 0) << "k " << k << " seats " << seats;
            }
            EXPECT_EQ(stats.kv_blocks_in_use, 0);
        }
    }
}

// A bf16 KV cache on the device against one on the host: both store the same keys and values
// rounded to bf16 (the forwards agree to ~1e-6 before rounding, so at most a rare element rounds
// the other way) and attend in f32, so greedy output must agree token for token, with
// speculation and without.
TEST_F(EngineCuda, Bf16KvCacheGreedyEqualsTheCpusBf16Cache) {
    const int64_t n_tokens = 24;
    const std::vector<std::vector<int32_t>> all = prompts();
    EngineOptions options;
    options.max_num_seqs = 5;
    options.max_model_len = 512;
    options.num_kv_blocks = 64;
    options.kv_cache_dtype = DType::bf16;
    std::vector<std::vector<int32_t>> expected;
    {
        Engine host(golden_model(), options);
        auto results = submit_greedy(host, all, n_tokens);
        for (auto& result : results) {
            result->wait();
            expected.push_back(result->ids());
        }
    }
    for (int64_t k : {0, 4}) {
        options.speculative.num_speculative_tokens = k;
        options.speculative.prompt_lookup_min = 1;
        options.speculative.prompt_lookup_max = 4;
        options.speculative.adaptive = false;
        Engine engine(golden_model_on_gpu(), options);
        auto results = submit_greedy(engine, all, n_tokens);
        for (size_t i = 0; i < all.size(); ++i) {
            results[i]->wait();
            EXPECT_EQ(results[i]->ids(), expected[i]) << "prompt " << i << " k " << k;
        }
    }
}

// Seeded sampling: with top_k the device sends back each row's most likely tokens and the
// engine samples from those (runtime/step_logits.h); without top_k, or with log-probabilities,
// whole rows. Either way the draws are the CPU engine's (the logits agree to ~1e-6 of their
// spread; a draw could flip only where its uniform lands that close to a boundary).
TEST_F(EngineCuda, SeededSamplingEqualsTheCpuWithAndWithoutCandidates) {
    const std::vector<std::vector<int32_t>> all = prompts();
    auto request = [](const std::vector<int32_t>& prompt, int64_t top_k, bool logprobs, uint64_t seed) {
        GenerationRequest r = greedy(prompt, 24);
        r.sampling.temperature = 1.0;
        r.sampling.top_k = top_k;
        r.sampling.top_p = 0.95;
        r.sampling.seed = seed;
        r.logprobs = logprobs;
        return r;
    };
    auto run = [&](Engine& engine, int64_t top_k, bool logprobs) {
        std::vector<std::unique_ptr<Collected>> results;
        for (size_t i = 0; i < all.size(); ++i) {
            results.push_back(std::make_unique<Collected>());
            engine.submit(request(all[i], top_k, logprobs, 100 + i), results.back()->on_token(),
                          results.back()->on_finish());
        }
        std::vector<std::vector<int32_t>> ids;
        for (auto& result : results) {
            result->wait();
            ids.push_back(result->ids());
        }
        return ids;
    };
    EngineOptions options;
    options.max_num_seqs = 5;
    options.max_model_len = 512;
    options.num_kv_blocks = 64;
    for (int64_t top_k : {40, 0}) {
        for (bool logprobs : {false, true}) {
            Engine cpu(golden_model(), options), gpu(golden_model_on_gpu(), options);
            const auto expected = run(cpu, top_k, logprobs);
            EXPECT_EQ(run(gpu, top_k, logprobs), expected) << "top_k " << top_k << " logprobs " << logprobs;
            EXPECT_NE(expected[0], greedy_alone(all[0], 24)) << "sampling at temperature 1 was greedy";
        }
    }
}

TEST_F(EngineCuda, PreemptionInADevicePoolKeepsGreedyOutput) {
    // As Engine.PreemptionUnderASmallPoolChangesNoOutput on the host: four requests (34 blocks
    // of 8 in all) share 13 blocks, one full context of 104 tokens, with small prefill chunks.
    EngineOptions options;
    options.max_model_len = 104;
    options.kv_block_size = 8;
    options.num_kv_blocks = 13;
    options.max_num_batched_tokens = 16;
    Engine engine(golden_model_on_gpu(), options);
    const std::vector<std::vector<int32_t>> all = reference_prompts();
    auto results = submit_greedy(engine, all, 40);
    for (size_t i = 0; i < all.size(); ++i) {
        results[i]->wait();
        EXPECT_EQ(results[i]->ids(), greedy_alone(all[i], 40)) << "prompt " << i;
    }
    const EngineStats stats = settled_stats(engine);
    EXPECT_GT(stats.num_preemptions, 0) << "the pool was meant to run out";
    EXPECT_EQ(stats.kv_blocks_in_use, 0);
}

}  // namespace
}  // namespace fourbit
