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

namespace {

// The first maximum: ties go to the lower id.
int32_t argmax(std::span<const float> logits) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace

void Sampler::prepare(std::span<const float> logits) {
    const int32_t n = static_cast<int32_t>(logits.size());
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    int32_t kept = n;
    auto more_likely = [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    if (params_.top_k > 0 && params_.top_k < n) {
        kept = static_cast<int32_t>(params_.top_k);
        std::partial_sort(order_.begin(), order_.begin() + kept, order_.end(), more_likely);
    } else {
        std::sort(order_.begin(), order_.end(), more_likely);
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
    kept_ = kept;
    probability_total_ = 0;
    for (int32_t i = 0; i < kept; ++i) probability_total_ += probabilities_[i];
}

int32_t Sampler::draw(int32_t excluded) {
    const double total =
        probability_total_ - (excluded >= 0 ? probabilities_[excluded] : 0.0);
    const double target = uniform() * total;
    double cumulative = 0;
    int32_t last = -1;
    for (int32_t i = 0; i < kept_; ++i) {
        if (i == excluded) continue;
        cumulative += probabilities_[i];
        last = i;
        if (target < cumulative) return order_[i];
    }
    FOURBIT_ASSERT(last >= 0, "nothing left to draw from");
    return order_[last];
}

int64_t Sampler::tokens_needed() const {
    if (params_.temperature == 0.0) return 1;
    return params_.top_k > 0 ? params_.top_k : 0;
}

int32_t Sampler::sample(std::span<const float> logits) {
    if (params_.temperature == 0.0) return argmax(logits);
    prepare(logits);
    return draw(-1);
}

int32_t Sampler::verify(std::span<const float> logits, int32_t draft) {
    if (params_.temperature == 0.0) return argmax(logits);
    prepare(logits);
    int32_t index = -1;
    for (int32_t i = 0; i < kept_; ++i) {
        if (order_[i] == draft) {
            index = i;
            break;
        }
    }
    if (index < 0) return draw(-1);  // p(draft) = 0: always rejected, nothing to remove
    if (uniform() * probability_total_ < probabilities_[index]) return draft;
    return draw(index);
}

}  // namespace fourbit
