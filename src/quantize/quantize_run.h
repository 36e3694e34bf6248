// `fourbit quantize` end to end: recipe -> queue -> calibration (with checkpoints, deferral,
// wall-clock stops) -> starved-expert check -> export -> KL smoke test -> report. The phases
// of the release script map onto flags: A = a fresh run, B = --resume, C = --export-only.
#pragma once

#include <cstdint>
#include <string>

#include "quantize/recipe.h"

namespace fourbit {

struct QuantizeOptions {
    Recipe recipe;  // file, environment and flags already merged
    std::string model_dir;
    std::string out_dir;
    bool resume = false;
    bool export_only = false;
    // Test hook: SIGKILL the process right after this many checkpoints were written (0: off).
    int64_t kill_after_checkpoints = 0;
};

// Exit code: 0 when the output is written, or when calibration stopped cleanly (soft
// wall-clock stop, samples deferred) with a message saying how to resume. Bad input and
// refusals throw Error. The hard wall-clock stop ends the process with kHardStopExitCode.
int run_quantize(const QuantizeOptions& options);

inline constexpr int kHardStopExitCode = 3;

}  // namespace fourbit
