// The calibration loop: each queued sample runs through the model with the observers, in
// queue order, skipping samples already done; a sample whose forward would exceed the memory
// budget is deferred (kept for a resume with a larger budget), never fatal; the state is
// checkpointed every `checkpoint_every` samples and at the end; a soft wall-clock budget
// finishes the current sample, checkpoints and stops cleanly.
//
// Streaming order: sample by sample through the whole model, whose weights are memory-mapped
// views of the checkpoint, so only the pages a forward touches are resident (docs/quantize.md
// says what is held at once and how it grows). Checkpoints are per N samples because that is
// the unit of work this order completes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "model/minimax_m2.h"
#include "quantize/calibration_samples.h"
#include "quantize/calibration_state.h"
#include "quantize/recipe.h"

namespace fourbit {

// Bytes the CPU forward (with the observers) holds for one sample of `n_tokens`, weights
// excluded: activations, the KV cache of every layer, the experts' temporaries.
uint64_t forward_bytes_estimate(const MiniMaxM2Config& config, int64_t n_tokens);

enum class CalibrationOutcome {
    complete,       // every sample done
    deferred_left,  // every sample that fits is done; some wait for a larger memory budget
    soft_stopped,   // the wall-clock budget ran out; resume to continue
};

struct CalibrationTimings {
    double forward_seconds = 0;
    int64_t n_samples_run = 0;
    int64_t n_tokens_run = 0;
};

struct CalibrationLoop {
    const MiniMaxM2* model = nullptr;
    const QuantizationPlan* plan = nullptr;
    const CalibrationQueue* queue = nullptr;
    CheckpointStore* store = nullptr;
    uint64_t memory_budget_bytes = 0;  // 0 = no limit
    int64_t checkpoint_every = 50;
    double soft_budget_s = 0;  // 0 = none; measured from `start`
    std::chrono::steady_clock::time_point start;
    // Called after every checkpoint written (tests kill the process here).
    std::function<void(int64_t n_checkpoints)> after_checkpoint;
};

CalibrationOutcome run_calibration(const CalibrationLoop& loop, CalibrationState& state,
                                   CalibrationTimings& timings);

}  // namespace fourbit
