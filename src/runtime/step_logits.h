// What a step's forward returned for its logit rows, as the engine samples from it: every row
// in full, or (on a device, when every sampler of the step needs no more) each row's k most
// likely tokens (MiniMaxM2::forward_top_k), which sample exactly as the whole row would
// (Sampler::tokens_needed).
#pragma once

#include <cstdint>
#include <span>

#include "model/minimax_m2.h"
#include "runtime/sampler.h"

namespace fourbit {

class StepLogits {
public:
    static StepLogits full(Tensor logits);       // [rows, vocab] f32 on the host
    static StepLogits candidates(TopLogits top);  // [rows, k] on the host

    // Whether rows [first, first + count) are free of NaN and infinity.
    bool finite(int64_t first, int64_t count) const;
    // The token `sampler` picks from row r; verify: `draft`'s verification there.
    int32_t sample(Sampler& sampler, int64_t r) const;
    int32_t verify(Sampler& sampler, int64_t r, int32_t draft) const;
    // Row r in full (log-probabilities); empty for candidates.
    std::span<const float> row(int64_t r) const;

private:
    Tensor logits_;  // full rows, or the candidates' values
    Tensor ids_;     // the candidates' ids; undefined for full rows
    // Row r's values: the vocabulary's logits or the candidates'.
    std::span<const float> values(int64_t r) const;
};

}  // namespace fourbit
