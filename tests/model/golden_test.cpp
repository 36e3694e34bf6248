// The forward pass against transformers' MiniMaxM2ForCausalLM (tests/golden/minimax_m2, made
// by tools/reference/make_minimax_m2_reference.py): logits, greedy continuation, and the
// engine's own invariants (incremental decode = prefill, a batch = each sequence alone).
//
// Bound on logits: the reference runs in float64 on the same bf16 (or dequantized fp8)
// weights; we run in f32. f32 rounding through 4 layers of dot products of length <= 136
// leaves errors of order 1e-6 (measured: 2e-6) on logits of magnitude <= 5 (reference.json:
// largest_abs_logit), so 1e-4 is well above the noise, yet far below what
// any real mistake produces (a wrong RoPE pairing, a per-head QK-norm, an unbiased selection or
// one flipped expert move logits by 1e-1 or more). The smallest gap between the k-th and
// (k+1)-th biased router scores in the reference is 1.5e-4 (reference.json), far above f32
// noise, so no expert choice can flip; the smallest top-2 logit gap on the greedy path is
// 4e-3, so greedy ids must match exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/minimax_m2.h"
#include "runtime/generate.h"

namespace fourbit {
namespace {

constexpr float kLogitBound = 1e-4f;

std::string golden_dir(const std::string& name) {
    return std::string(FOURBIT_SOURCE_DIR) + "/tests/golden/minimax_m2/" + name;
}

std::vector<int32_t> ids_of(const Tensor& tensor) {
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < tensor.numel(); ++i) {
        ids.push_back(static_cast<int32_t>(tensor.data<int64_t>()[i]));
    }
    return ids;
}

float max_abs_difference(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(shape_text(a.shape()), shape_text(b.shape()));
    float largest = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
        largest = std::max(largest, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
    }
    return largest;
}

Tensor prefill(const MiniMaxM2& model, const std::vector<int32_t>& ids) {
    KvCache cache(model.config());
    SequenceInput input{ids, &cache, true};
    return model.forward(std::span<const SequenceInput>(&input, 1));
}

class Golden : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        model_ = std::make_unique<MiniMaxM2>(load_model_weights(golden_dir(GetParam())));
        reference_ = SafetensorsFile::open(golden_dir(GetParam()) + "/reference.safetensors");
    }
    std::vector<int32_t> prompt(int i) const {
        return ids_of(reference_->tensor("prompt." + std::to_string(i)));
    }
    std::unique_ptr<MiniMaxM2> model_;
    std::shared_ptr<const SafetensorsFile> reference_;
};

TEST_P(Golden, LogitsMatchTransformers) {
    for (int i = 0; i < 4; ++i) {
        Tensor logits = prefill(*model_, prompt(i));
        Tensor expected = reference_->tensor("logits." + std::to_string(i));
        float difference = max_abs_difference(logits, expected);
        EXPECT_LT(difference, kLogitBound) << "prompt " << i;
        RecordProperty("max_abs_difference_" + std::to_string(i), std::to_string(difference));
    }
}

TEST_P(Golden, GreedyContinuationMatchesTransformers) {
    std::vector<int32_t> expected = ids_of(reference_->tensor("greedy.0"));
    SamplingParams greedy;
    greedy.temperature = 0;
    Sampler sampler(greedy);
    GenerateOptions options;
    options.max_tokens = static_cast<int64_t>(expected.size());
    options.ignore_eos = true;
    GenerateResult result = generate(*model_, prompt(0), options, sampler);
    EXPECT_EQ(result.token_ids, expected);
}

TEST_P(Golden, IncrementalDecodeEqualsOnePrefill) {
    std::vector<int32_t> ids = prompt(3);
    Tensor full = prefill(*model_, ids);
    KvCache cache(model_->config());
    const int64_t split = 40;
    std::vector<int32_t> head(ids.begin(), ids.begin() + split);
    SequenceInput first{head, &cache, true};
    Tensor head_logits = model_->forward(std::span<const SequenceInput>(&first, 1));
    EXPECT_LT(max_abs_difference(head_logits, full.rows(0, split)), 1e-4f);
    for (int64_t t = split; t < static_cast<int64_t>(ids.size()); ++t) {
        std::vector<int32_t> one{ids[t]};
        SequenceInput step{one, &cache, false};
        Tensor logits = model_->forward(std::span<const SequenceInput>(&step, 1));
        EXPECT_LT(max_abs_difference(logits, full.rows(t, 1)), 1e-4f) << "position " << t;
    }
    EXPECT_EQ(cache.n_tokens(), static_cast<int64_t>(ids.size()));
}

TEST_P(Golden, BatchOfThreeEqualsEachAlone) {
    std::vector<std::vector<int32_t>> prompts = {prompt(0), prompt(1), prompt(2)};
    std::vector<KvCache> caches(3, KvCache(model_->config()));
    std::vector<SequenceInput> batch;
    for (int i = 0; i < 3; ++i) batch.push_back({prompts[i], &caches[i], true});
    Tensor together = model_->forward(batch);
    int64_t row = 0;
    for (int i = 0; i < 3; ++i) {
        Tensor alone = prefill(*model_, prompts[i]);
        EXPECT_LT(max_abs_difference(together.rows(row, alone.dim(0)), alone), 1e-4f)
            << "sequence " << i;
        row += alone.dim(0);
    }
    // And a decode step of all three at once, each from its own cache.
    std::vector<int32_t> next[3] = {{1}, {2}, {3}};
    std::vector<SequenceInput> step;
    for (int i = 0; i < 3; ++i) step.push_back({next[i], &caches[i], false});
    Tensor stepped = model_->forward(step);
    for (int i = 0; i < 3; ++i) {
        std::vector<int32_t> extended = prompts[i];
        extended.push_back(next[i][0]);
        Tensor alone = prefill(*model_, extended);
        EXPECT_LT(max_abs_difference(stepped.rows(i, 1), alone.rows(alone.dim(0) - 1, 1)),
                  1e-4f)
            << "sequence " << i;
    }
}

TEST_P(Golden, TransformersNativeConfigReadsTheSame) {
    MiniMaxM2Config official = load_minimax_m2_config(golden_dir(GetParam()));
    MiniMaxM2Config native = parse_minimax_m2_config(
        read_json_file(golden_dir(GetParam()) + "/config.transformers.json"), "native");
    EXPECT_EQ(native.rotary_dim, official.rotary_dim);
    EXPECT_LT(native.rotary_dim, native.head_dim);  // partial RoPE, not the silent full one
    EXPECT_EQ(native.rope_theta, official.rope_theta);
    EXPECT_EQ(native.q_width(), official.q_width());
    EXPECT_NE(native.q_width(), native.hidden_size);
}

INSTANTIATE_TEST_SUITE_P(MiniMaxM2, Golden, ::testing::Values("bf16", "fp8"));

}  // namespace
}  // namespace fourbit
