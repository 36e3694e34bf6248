// Starved experts: experts of a quantized layer that routing gave fewer than
// `starved_min_tokens` calibration tokens, so their input amax is missing or meaningless.
//
// Rescue policy (stated in the report): an expert's w1 and w3 read the same rows as the
// router, so they get the router input's amax over every calibration token of the layer —
// exactly what routing all tokens through the expert would observe; its w2 input depends on
// its own weights, so it gets the maximum of its well-fed siblings' w2 amax (ModelOpt's
// fallback for experts without data). More than `starved_expert_pct_abort` percent of starved
// experts aborts the export: the calibration data does not cover the model.
#pragma once

#include <cstdint>
#include <vector>

#include "quantize/calibration_state.h"
#include "quantize/quantized_modules.h"

namespace fourbit {

struct StarvedExpert {
    int64_t layer = 0;
    int64_t expert = 0;
    int64_t n_tokens = 0;
};

struct StarvedExperts {
    std::vector<StarvedExpert> starved;
    int64_t n_experts_checked = 0;  // experts of layers whose experts are quantized
    double percent() const {
        return n_experts_checked == 0 ? 0.0 : 100.0 * starved.size() / n_experts_checked;
    }
};

StarvedExperts find_starved_experts(const QuantizationPlan& plan, const CalibrationState& state,
                                    int64_t min_tokens);

// The input amax to export: `state`'s, with the starved experts rescued by the policy above.
// Error when more than `abort_percent` are starved, or a layer has no well-fed expert.
std::vector<float> rescue_starved_experts(const QuantizationPlan& plan,
                                          const CalibrationState& state,
                                          const StarvedExperts& starved, double abort_percent);

}  // namespace fourbit
