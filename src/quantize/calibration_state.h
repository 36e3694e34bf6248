// The observed state of a calibration run — per-Linear input amax, tokens routed to each expert,
// which samples are done or deferred — and its checkpoints: small JSON files written atomically
// (temporary file, fsync, rename) with a sha256 marker beside each, so that a run killed at any
// moment resumes from the newest checkpoint whose marker matches.
//
// Every observed quantity is a maximum or a sum over samples, so the state after a set of
// samples does not depend on the order they were processed in: a resumed run, or one that
// processes deferred samples last, ends in the same state, byte for byte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quantize/quantized_modules.h"

namespace fourbit {

struct CalibrationState {
    std::string queue_sha256;          // the queue this state belongs to
    std::vector<uint8_t> done;         // per queue sample
    std::vector<uint8_t> deferred;     // per queue sample: over the memory budget, not yet run
    std::vector<float> input_amax;     // per plan module: max |x| of its inputs, 0 = none seen
    std::vector<int64_t> expert_tokens;  // [layer * n_experts + expert]: tokens routed to it
    std::vector<int64_t> dataset_tokens;  // per dataset: tokens processed
    int64_t n_experts = 0;

    static CalibrationState empty(const std::string& queue_sha256, int64_t n_samples,
                                  int64_t n_modules, int64_t n_layers, int64_t n_experts,
                                  int64_t n_datasets);
    int64_t n_done() const;
    int64_t n_deferred() const;
    bool complete() const { return n_done() == static_cast<int64_t>(done.size()); }
    int64_t tokens_of_expert(int64_t layer, int64_t expert) const {
        return expert_tokens[layer * n_experts + expert];
    }
};

// `modules` name the amax entries (the plan's order); a state file lists amax by module name.
std::string calibration_state_json(const CalibrationState& state,
                                   const std::vector<LinearModule>& modules);
// Error naming `source` when malformed or made for other modules.
CalibrationState parse_calibration_state(const std::string& text,
                                         const std::vector<LinearModule>& modules,
                                         const std::string& source);

// Writes `bytes` to `path` atomically: `path.tmp`, fsync, rename, fsync of the directory.
void write_file_atomically(const std::string& path, const std::string& bytes);

class CheckpointStore {
public:
    explicit CheckpointStore(std::string dir) : dir_(std::move(dir)) {}
    // state-NNNNNN.json (NNNNNN = samples done) and state-NNNNNN.json.sha256; keeps the two
    // newest. Returns the path written.
    std::string write(const CalibrationState& state, const std::vector<LinearModule>& modules);
    // The newest checkpoint whose marker matches its file; files without a matching marker (a
    // write cut short) are skipped with a warning. nullopt when there is none.
    std::optional<CalibrationState> load_latest(const std::vector<LinearModule>& modules,
                                                std::string* path = nullptr) const;
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
};

}  // namespace fourbit
