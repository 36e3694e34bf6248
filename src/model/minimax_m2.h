// The MiniMax-M2 model: weights plus the forward pass over a batch of sequences.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_cache.h"
#include "model/weights.h"

namespace fourbit {

// One sequence's part of a batch: its new tokens, appended after what its cache holds.
struct SequenceInput {
    std::span<const int32_t> token_ids;
    KvCache* cache;
    bool all_logits = false;  // logits for every new token, else only the last
};

class MiniMaxM2 {
public:
    explicit MiniMaxM2(ModelWeights weights) : weights_(std::move(weights)) {}

    const MiniMaxM2Config& config() const { return weights_.config; }
    const ModelWeights& weights() const { return weights_; }

    // Runs the new tokens of every sequence through the model, extends each cache, and returns
    // logits [rows, vocab] f32: per sequence in batch order, all its new tokens' rows or its
    // last one. A token id outside the vocabulary is an Error.
    Tensor forward(std::span<const SequenceInput> batch) const;

private:
    ModelWeights weights_;
};

}  // namespace fourbit
