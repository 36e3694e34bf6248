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

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "model/minimax_m2.h"
#include "model/sequence_cache.h"
#include "support/greedy_reference.h"

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
    SequenceCache cache(model, static_cast<int64_t>(ids.size()));
    return cache.forward(model, ids, LogitRows::all);
}

// Block tables over one shared pool whose blocks are dealt out in a scrambled order, so that
// no sequence's positions are contiguous in memory.
std::vector<std::vector<int32_t>> scrambled_tables(int64_t n_sequences, int64_t blocks_each,
                                                   uint32_t seed) {
    std::vector<int32_t> ids(n_sequences * blocks_each);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), std::mt19937(seed));
    std::vector<std::vector<int32_t>> tables(n_sequences);
    for (int64_t i = 0; i < n_sequences * blocks_each; ++i) tables[i % n_sequences].push_back(ids[i]);
    return tables;
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
    EXPECT_EQ(test_support::greedy_reference(*model_, prompt(0),
                                             static_cast<int64_t>(expected.size())),
              expected);
}

TEST_P(Golden, IncrementalDecodeEqualsOnePrefill) {
    std::vector<int32_t> ids = prompt(3);
    Tensor full = prefill(*model_, ids);
    // Blocks of 16 with a split at 40: the decode steps cross block boundaries.
    SequenceCache cache(*model_, static_cast<int64_t>(ids.size()), 16);
    const int64_t split = 40;
    std::vector<int32_t> head(ids.begin(), ids.begin() + split);
    Tensor head_logits = cache.forward(*model_, head, LogitRows::all);
    EXPECT_LT(max_abs_difference(head_logits, full.rows(0, split)), 1e-4f);
    for (int64_t t = split; t < static_cast<int64_t>(ids.size()); ++t) {
        std::vector<int32_t> one{ids[t]};
        Tensor logits = cache.forward(*model_, one);
        EXPECT_LT(max_abs_difference(logits, full.rows(t, 1)), 1e-4f) << "position " << t;
    }
    EXPECT_EQ(cache.n_tokens(), static_cast<int64_t>(ids.size()));
}

TEST_P(Golden, BatchOfThreeEqualsEachAlone) {
    std::vector<std::vector<int32_t>> prompts = {prompt(0), prompt(1), prompt(2)};
    const int64_t block_size = 8;
    int64_t longest = 0;
    for (const auto& p : prompts) longest = std::max<int64_t>(longest, p.size() + 1);
    const int64_t blocks_each = (longest + block_size - 1) / block_size;
    KvPool pool(model_->config(), 3 * blocks_each, block_size);
    std::vector<std::vector<int32_t>> tables = scrambled_tables(3, blocks_each, 7);
    std::vector<SequenceInput> batch;
    for (int i = 0; i < 3; ++i) batch.push_back({prompts[i], 0, tables[i], LogitRows::all});
    Tensor together = model_->forward(batch, pool);
    int64_t row = 0;
    for (int i = 0; i < 3; ++i) {
        Tensor alone = prefill(*model_, prompts[i]);
        EXPECT_LT(max_abs_difference(together.rows(row, alone.dim(0)), alone), 1e-4f)
            << "sequence " << i;
        row += alone.dim(0);
    }
    // And a decode step of all three at once, each from its own blocks.
    std::vector<int32_t> next[3] = {{1}, {2}, {3}};
    std::vector<SequenceInput> step;
    for (int i = 0; i < 3; ++i) {
        step.push_back({next[i], static_cast<int64_t>(prompts[i].size()), tables[i]});
    }
    Tensor stepped = model_->forward(step, pool);
    for (int i = 0; i < 3; ++i) {
        std::vector<int32_t> extended = prompts[i];
        extended.push_back(next[i][0]);
        Tensor alone = prefill(*model_, extended);
        EXPECT_LT(max_abs_difference(stepped.rows(i, 1), alone.rows(alone.dim(0) - 1, 1)),
                  1e-4f)
            << "sequence " << i;
    }
}

TEST_P(Golden, SharedPrefixBlocksServeASecondSequence) {
    // Sequence A prefills a prompt; B shares A's first two full blocks (its table starts with
    // A's block ids) and computes only its own tail, in the same batch as A's next step. B's
    // logits must equal a prefill of B's whole prompt alone: the shared blocks hold exactly the
    // keys and values B would have computed.
    const int64_t block_size = 16;
    std::vector<int32_t> a = prompt(3);
    ASSERT_GE(a.size(), 3 * static_cast<size_t>(block_size));
    std::vector<int32_t> b(a.begin(), a.begin() + 2 * block_size);
    for (int32_t id : prompt(1)) b.push_back(id);
    KvPool pool(model_->config(), 32, block_size);
    std::vector<int32_t> table_a, table_b = {0, 0};
    for (int32_t i = 0; i < 12; ++i) table_a.push_back(i * 2);      // even blocks
    for (int32_t i = 0; i < 12; ++i) table_b.push_back(i * 2 + 1);  // odd blocks after the two
    table_b[0] = table_a[0];
    table_b[1] = table_a[1];
    SequenceInput first{a, 0, table_a, LogitRows::none};
    Tensor none = model_->forward(std::span<const SequenceInput>(&first, 1), pool);
    EXPECT_EQ(none.dim(0), 0) << "LogitRows::none asks for no rows";
    std::vector<int32_t> tail(b.begin() + 2 * block_size, b.end());
    std::vector<int32_t> next_a{5};
    std::vector<SequenceInput> batch = {
        {next_a, static_cast<int64_t>(a.size()), table_a, LogitRows::last},
        {tail, 2 * block_size, table_b, LogitRows::all}};
    Tensor logits = model_->forward(batch, pool);
    Tensor alone = prefill(*model_, b);
    EXPECT_LT(max_abs_difference(logits.rows(1, static_cast<int64_t>(tail.size())),
                                 alone.rows(2 * block_size, static_cast<int64_t>(tail.size()))),
              1e-4f);
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
