// The calibration observers: max calibration (ModelOpt's `max` algorithm, nvfp4.md §3.2) of
// every Linear's input, per expert, and the tokens routed to each expert, accumulated into a
// CalibrationState. The forward runs in full precision (the source weights), as ModelOpt's
// calibration does with quantization disabled.
#pragma once

#include "model/forward_observer.h"
#include "model/weights.h"
#include "quantize/calibration_state.h"

namespace fourbit {

class CalibrationObserver : public ForwardObserver {
public:
    // `plan` names the modules in `state`'s order; `weights` are the model being run (the
    // experts' w2 input is recomputed from their w1 and w3).
    CalibrationObserver(const QuantizationPlan& plan, const ModelWeights& weights,
                        CalibrationState& state);

    void attention_input(int64_t layer, const Tensor& h) override;
    void attention_output(int64_t layer, const Tensor& attended) override;
    void moe_input(int64_t layer, const Tensor& h, const Tensor& expert_ids) override;

private:
    void observe(int64_t module, const Tensor& x);
    int64_t module_index(int64_t layer, int64_t slot) const;

    const QuantizationPlan& plan_;
    const ModelWeights& weights_;
    CalibrationState& state_;
    int64_t modules_per_layer_;
};

// max |x| over a tensor of f32; an Error naming `what` for a NaN or an infinity (ModelOpt's
// max calibrator asserts the same).
float observed_amax(const Tensor& x, const std::string& what);

}  // namespace fourbit
