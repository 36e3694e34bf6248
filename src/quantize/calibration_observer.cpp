#include "quantize/calibration_observer.h"

#include <algorithm>
#include <cmath>

#include "ops/linear.h"
#include "ops/moe.h"
#include "util/error.h"

namespace fourbit {

namespace {

// Offsets within a layer's run of modules (minimax_m2_linear_modules order).
constexpr int64_t kQ = 0, kK = 1, kV = 2, kO = 3, kRouter = 4, kFirstExpert = 5;
constexpr int64_t kW1 = 0, kW2 = 1, kW3 = 2;

}  // namespace

float observed_amax(const Tensor& x, const std::string& what) {
    const float* values = x.data<float>();
    float amax = 0.0f;
    for (int64_t i = 0; i < x.numel(); ++i) {
        const float magnitude = std::fabs(values[i]);
        if (!std::isfinite(magnitude)) {
            fail("calibration saw a non-finite input ({}) to {} at element {}", values[i], what, i);
        }
        amax = std::max(amax, magnitude);
    }
    return amax;
}

CalibrationObserver::CalibrationObserver(const QuantizationPlan& plan, const ModelWeights& weights,
                                         CalibrationState& state)
    : plan_(plan),
      weights_(weights),
      state_(state),
      modules_per_layer_(kFirstExpert + 3 * weights.config.num_local_experts) {}

int64_t CalibrationObserver::module_index(int64_t layer, int64_t slot) const {
    const int64_t index = layer * modules_per_layer_ + slot;
    FOURBIT_ASSERT(plan_.modules[index].layer == layer, "module order");
    return index;
}

void CalibrationObserver::observe(int64_t module, const Tensor& x) {
    float& amax = state_.input_amax[module];
    amax = std::max(amax, observed_amax(x, plan_.modules[module].prefix));
}

void CalibrationObserver::attention_input(int64_t layer, const Tensor& h) {
    // q, k and v read the same rows: one reduction serves all three.
    const float amax = observed_amax(h, plan_.modules[module_index(layer, kQ)].prefix);
    for (int64_t slot : {kQ, kK, kV}) {
        float& stored = state_.input_amax[module_index(layer, slot)];
        stored = std::max(stored, amax);
    }
}

void CalibrationObserver::attention_output(int64_t layer, const Tensor& attended) {
    observe(module_index(layer, kO), attended);
}

void CalibrationObserver::moe_input(int64_t layer, const Tensor& h, const Tensor& expert_ids) {
    observe(module_index(layer, kRouter), h);
    const int64_t n_tokens = h.dim(0), hidden = h.dim(1), top_k = expert_ids.dim(1);
    const int64_t n_experts = weights_.config.num_local_experts;
    const int32_t* ids = expert_ids.data<int32_t>();
    std::vector<std::vector<int64_t>> rows_of(n_experts);
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t j = 0; j < top_k; ++j) rows_of[ids[t * top_k + j]].push_back(t);
    }
    const LayerWeights& layer_weights = weights_.layers[layer];
    for (int64_t e = 0; e < n_experts; ++e) {
        const std::vector<int64_t>& rows = rows_of[e];
        if (rows.empty()) continue;
        state_.expert_tokens[layer * n_experts + e] += static_cast<int64_t>(rows.size());
        const int64_t base = kFirstExpert + 3 * e;
        // Only the routed tokens reach an expert: its w1/w3 see those rows of h, its w2 sees
        // silu(w1 x) * w3 x of them (the same ops the forward runs).
        const int64_t n = static_cast<int64_t>(rows.size());
        Tensor x = Tensor::zeros(DType::f32, {n, hidden});
        for (int64_t r = 0; r < n; ++r) {
            std::copy_n(h.data<float>() + rows[r] * hidden, hidden, x.data<float>() + r * hidden);
        }
        observe(module_index(layer, base + kW1), x);
        state_.input_amax[module_index(layer, base + kW3)] =
            state_.input_amax[module_index(layer, base + kW1)];
        const ExpertWeights& expert = layer_weights.experts[e];
        Tensor gate = Tensor::zeros(DType::f32, {n, expert.gate.rows()});
        Tensor up = Tensor::zeros(DType::f32, {n, expert.up.rows()});
        linear(x, expert.gate, gate);
        linear(x, expert.up, up);
        swiglu(gate, up, gate);
        observe(module_index(layer, base + kW2), gate);
    }
}

}  // namespace fourbit
