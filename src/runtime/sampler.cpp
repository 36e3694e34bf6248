#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace fourbit {

void SamplingParams::validate() const {
    if (!(temperature >= 0.0) || !std::isfinite(temperature)) {
        fail("temperature must be a finite number >= 0, got {}", temperature);
    }
    if (top_k < -1) fail("top_k must be -1, 0 (all tokens) or positive, got {}", top_k);
    if (!(top_p > 0.0 && top_p <= 1.0)) fail("top_p must be in (0, 1], got {}", top_p);
    if (!(min_p >= 0.0 && min_p <= 1.0)) fail("min_p must be in [0, 1], got {}", min_p);
}

SamplingParams sampling_defaults(const GenerationDefaults& defaults) {
    SamplingParams params;
    if (defaults.temperature) params.temperature = *defaults.temperature;
    if (defaults.top_k) params.top_k = *defaults.top_k;
    if (defaults.top_p) params.top_p = *defaults.top_p;
    if (defaults.min_p) params.min_p = *defaults.min_p;
    if (defaults.do_sample && !*defaults.do_sample) params.temperature = 0.0;
    return params;
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {
    params_.validate();
}

int32_t Sampler::sample(std::span<const float> logits) {
    const int32_t n = static_cast<int32_t>(logits.size());
    if (params_.temperature == 0.0) {
        // The first maximum: ties go to the lower id.
        return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                    logits.begin());
    }
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    int32_t kept = n;
    if (params_.top_k > 0 && params_.top_k < n) {
        kept = static_cast<int32_t>(params_.top_k);
        std::partial_sort(order_.begin(), order_.begin() + kept, order_.end(),
                          [&](int32_t a, int32_t b) {
                              return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
                          });
    } else {
        std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) {
            return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
        });
    }
    // Softmax over the kept tokens at this temperature, in double.
    probabilities_.resize(kept);
    const double top = logits[order_[0]];
    double total = 0;
    for (int32_t i = 0; i < kept; ++i) {
        probabilities_[i] = std::exp((logits[order_[i]] - top) / params_.temperature);
        total += probabilities_[i];
    }
    for (int32_t i = 0; i < kept; ++i) probabilities_[i] /= total;
    // top_p: the smallest prefix whose mass reaches top_p (at least one token).
    if (params_.top_p < 1.0) {
        double mass = 0;
        int32_t i = 0;
        while (i < kept) {
            mass += probabilities_[i++];
            if (mass >= params_.top_p) break;
        }
        kept = i;
    }
    // min_p: relative to the most likely token.
    if (params_.min_p > 0.0) {
        const double floor = params_.min_p * probabilities_[0];
        int32_t i = 1;
        while (i < kept && probabilities_[i] >= floor) ++i;
        kept = i;
    }
    total = 0;
    for (int32_t i = 0; i < kept; ++i) total += probabilities_[i];
    // A uniform draw in [0, total) from 53 random bits, portable across standard libraries.
    const double draw = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
    double cumulative = 0;
    for (int32_t i = 0; i < kept; ++i) {
        cumulative += probabilities_[i];
        if (draw < cumulative) return order_[i];
    }
    return order_[kept - 1];
}

}  // namespace fourbit
