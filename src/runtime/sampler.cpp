#include "runtime/sampler.h"

#include <algorithm>
#include <array>
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
    auto more_likely = [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    };
    if (params_.top_k > 0 && params_.top_k < n) {
        // Softmax over the top_k tokens at this temperature, in double.
        order_.resize(n);
        std::iota(order_.begin(), order_.end(), 0);
        const int32_t kept = static_cast<int32_t>(params_.top_k);
        std::partial_sort(order_.begin(), order_.begin() + kept, order_.end(), more_likely);
        probabilities_.resize(kept);
        const double top = logits[order_[0]];
        double total = 0;
        for (int32_t i = 0; i < kept; ++i) {
            probabilities_[i] = std::exp((logits[order_[i]] - top) / params_.temperature);
            total += probabilities_[i];
        }
        for (double& p : probabilities_) p /= total;
        kept_ = kept;
        // top_p: the smallest prefix whose mass reaches top_p (at least one token).
        if (params_.top_p < 1.0) {
            double mass = 0;
            int32_t i = 0;
            while (i < kept_) {
                mass += probabilities_[i++];
                if (mass >= params_.top_p) break;
            }
            kept_ = i;
        }
        // min_p: relative to the most likely token.
        if (params_.min_p > 0.0) {
            const double floor = params_.min_p * probabilities_[0];
            int32_t i = 1;
            while (i < kept_ && probabilities_[i] >= floor) ++i;
            kept_ = i;
        }
        probability_total_ = 0;
        for (int32_t i = 0; i < kept_; ++i) probability_total_ += probabilities_[i];
    } else {
        prepare_whole_vocabulary(logits, more_likely);
    }
}

template <typename MoreLikely>
void Sampler::prepare_whole_vocabulary(std::span<const float> logits, MoreLikely more_likely) {
    // Every token's probability by id, with no sort of the vocabulary (a sort of 200,064 ids
    // took 25 ms a token): a draw walks the kept tokens in any fixed order, which samples the
    // same distribution; only top_p's boundary needs an order, and only among the tokens of the
    // probability octave it falls in.
    const int32_t n = static_cast<int32_t>(logits.size());
    const double top = *std::max_element(logits.begin(), logits.end());
    std::vector<double>& weight = weights_;
    weight.resize(n);
    double total = 0;
    for (int32_t i = 0; i < n; ++i) {
        weight[i] = std::exp(static_cast<float>((logits[i] - top) / params_.temperature));
        total += weight[i];
    }
    for (double& w : weight) w /= total;
    // min_p keeps the tokens at or above a floor: the likeliest token's own share of it.
    const double floor = params_.min_p * (1.0 / total);
    order_.clear();
    if (params_.top_p >= 1.0) {
        for (int32_t i = 0; i < n; ++i) {
            if (weight[i] >= floor) order_.push_back(i);
        }
    } else {
        // Octave b holds probabilities in [2^-(b+1), 2^-b) (the last, everything smaller): the
        // octaves above the one where the mass reaches top_p are kept whole, that one sorted.
        constexpr int kOctaves = 64;
        std::array<double, kOctaves> mass{};
        const auto octave = [](double p) {
            int exponent = 0;
            std::frexp(p, &exponent);  // p = m 2^exponent, m in [0.5, 1)
            return std::min(kOctaves - 1, std::max(0, -exponent));
        };
        for (int32_t i = 0; i < n; ++i) mass[octave(weight[i])] += weight[i];
        double above = 0;
        int boundary = 0;
        while (boundary < kOctaves - 1 && above + mass[boundary] < params_.top_p) above += mass[boundary++];
        std::vector<int32_t>& edge = edge_;
        edge.clear();
        for (int32_t i = 0; i < n; ++i) {
            const int o = octave(weight[i]);
            if (o < boundary) order_.push_back(i);
            if (o == boundary) edge.push_back(i);
        }
        std::sort(edge.begin(), edge.end(), more_likely);
        // The smallest prefix whose mass reaches top_p (at least one token).
        double kept_mass = above;
        for (int32_t id : edge) {
            if (!order_.empty() && kept_mass >= params_.top_p) break;
            order_.push_back(id);
            kept_mass += weight[id];
        }
        if (params_.min_p > 0.0) {
            std::erase_if(order_, [&](int32_t id) { return weight[id] < floor; });
        }
    }
    kept_ = static_cast<int32_t>(order_.size());
    probabilities_.resize(kept_);
    probability_total_ = 0;
    for (int32_t i = 0; i < kept_; ++i) {
        probabilities_[i] = weight[order_[i]];
        probability_total_ += probabilities_[i];
    }
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
