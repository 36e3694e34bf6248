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
    int32_t sample(std::span<const float> logits);

private:
    SamplingParams params_;
    std::mt19937_64 rng_;
    std::vector<int32_t> order_;
    std::vector<double> probabilities_;
};

}  // namespace fourbit
