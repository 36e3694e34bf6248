// Picks the next token from a row of logits: greedy (temperature 0) or sampled after
// temperature, top_k, top_p and min_p, applied in that order as transformers does.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "formats/model_config.h"

namespace fourbit {

struct SamplingParams {
    double temperature = 1.0;  // 0 = greedy
    int64_t top_k = 0;         // 0 or -1 = all tokens
    double top_p = 1.0;        // nucleus mass kept, in (0, 1]
    double min_p = 0.0;        // drop tokens below min_p * p(most likely), in [0, 1]
    std::optional<uint64_t> seed;

    // Error naming the field when out of range.
    void validate() const;
};

// The checkpoint's generation_config.json defaults (if any) under explicit settings; a
// checkpoint that says do_sample: false means greedy.
SamplingParams sampling_defaults(const GenerationDefaults& defaults);

class Sampler {
public:
    explicit Sampler(const SamplingParams& params);
    // How many of a row's most likely tokens this sampler needs to sample (and verify) exactly
    // as from the whole row: 1 when greedy, top_k when set (the kept set lies among them), else
    // 0, every token. Given those tokens' logits in order (largest first, equals by lower id:
    // top_k_rows), sample and verify return their index there.
    int64_t tokens_needed() const;
    int32_t sample(std::span<const float> logits);
    // Speculative verification of a deterministic draft token (an n-gram's): returns `draft`
    // with probability p(draft) under this sampler's distribution p, else a token drawn from p
    // with `draft` removed and renormalised. The result follows p exactly: P(draft) = p(draft),
    // P(x) = (1 - p(draft)) p(x) / (1 - p(draft)) = p(x) (Leviathan et al. 2023, with a draft
    // distribution that is a point mass). Greedy: the argmax, whatever the draft.
    int32_t verify(std::span<const float> logits, int32_t draft);

private:
    // order_[0, kept_) and their probabilities_ after temperature, top_k, top_p and min_p
    // (normalised over the top_k tokens, or the whole vocabulary); probability_total_ is their
    // sum. With top_k, order_ is by likelihood; without, the kept tokens in a fixed order that
    // needs no sort of the vocabulary (prepare_whole_vocabulary).
    void prepare(std::span<const float> logits);
    template <typename MoreLikely>
    void prepare_whole_vocabulary(std::span<const float> logits, MoreLikely more_likely);
    // A uniform draw in [0, 1) from 53 random bits, portable across standard libraries.
    double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
    // One of the kept tokens but `excluded` (an index into order_, or -1), by probability.
    int32_t draw(int32_t excluded);

    SamplingParams params_;
    std::mt19937_64 rng_;
    std::vector<int32_t> order_;
    std::vector<double> probabilities_;
    std::vector<double> weights_;  // every token's probability, by id (whole-vocabulary prepare)
    std::vector<int32_t> edge_;    // the tokens of top_p's boundary octave (the same)
    int32_t kept_ = 0;
    double probability_total_ = 0;
};

}  // namespace fourbit
