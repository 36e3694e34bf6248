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

// Prompts with repetition for the proposer, and without.
std::vector<std::vector<int32_t>> prompts() {
    std::vector<std::vector<int32_t>> out = reference_prompts();
    std::vector<int32_t> looped;
    for (int r = 0; r < 4; ++r) {
        for (int32_t id : reference_ids("prompt.2")) looped.push_back(id);
    }
    out.push_back(looped);
    return out;
}

TEST_F(EngineCuda, GreedyWithAndWithoutSpeculationEqualsTheCpu) {
    const int64_t n_tokens = 24;
    const std::vector<std::vector<int32_t>> all = prompts();
    std::vector<std::vector<int32_t>> expected;
    for (const auto& prompt : all) expected.push_back(greedy_alone(prompt, n_tokens));
    for (int64_t k : {0, 1, 4, 8}) {
        for (int64_t seats : {1, 5}) {
            EngineOptions options;
            options.max_num_seqs = seats;
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
            if (k > 0) EXPECT_GT(stats.spec_accepted_tokens, 0) << "k " << k << " seats " << seats;
            EXPECT_EQ(stats.kv_blocks_in_use, 0);
        }
    }
}

TEST_F(EngineCuda, PreemptionInADevicePoolKeepsGreedyOutput) {
    const int64_t n_tokens = 20;
    const std::vector<std::vector<int32_t>> all = reference_prompts();
    EngineOptions options;
    options.max_num_seqs = 4;
    options.kv_block_size = 8;
    int64_t longest = 0;
    for (const auto& prompt : all) longest = std::max<int64_t>(longest, prompt.size() + n_tokens);
    options.max_model_len = longest;
    options.num_kv_blocks = (longest + 7) / 8 + 2;  // one context and a bit: preemption
    Engine engine(golden_model_on_gpu(), options);
    auto results = submit_greedy(engine, all, n_tokens);
    for (size_t i = 0; i < all.size(); ++i) {
        results[i]->wait();
        EXPECT_EQ(results[i]->ids(), greedy_alone(all[i], n_tokens)) << "prompt " << i;
    }
    const EngineStats stats = settled_stats(engine);
    EXPECT_GT(stats.num_preemptions, 0);
}

}  // namespace
}  // namespace fourbit
