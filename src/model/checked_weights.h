// Loading a checkpoint with every problem reported instead of thrown, so that one walk over the
// tensors serves both load_model_weights (which refuses the first problem) and inspect (which
// lists them all).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "formats/nvfp4_tensors.h"
#include "formats/quantization_scheme.h"
#include "model/linear_modules.h"
#include "model/weights.h"

namespace fourbit {

// What the checkpoint holds for one linear module.
struct LinearRecord {
    LinearModule module;
    LinearStorage storage = LinearStorage::missing;
    DType dtype = DType::bf16;  // of `.weight` for dense and FP8 modules
    std::string ignored_by;     // the ignore pattern that matches it, "" if none
    bool ok = false;            // read without problems
    std::optional<float> global_scale, input_scale;  // NVFP4, dequantize direction
    uint64_t bytes = 0;                              // all of its tensors on disk
    uint64_t bytes_in_memory = 0;  // what its LinearWeight holds (0 when unusable)
};

struct CheckedWeights {
    ModelWeights weights;  // incomplete where problems were reported
    QuantizationScheme scheme;
    std::vector<LinearRecord> linears;  // minimax_m2_linear_modules order
    std::set<std::string> used;         // names of the tensors the model reads
    uint64_t other_bytes = 0;           // norms, embeddings, routing biases
};

// Reads config.json (errors there throw: without a config nothing else can be checked) and the
// weights, calling `problem` for each problem found in the tensors.
CheckedWeights read_checked_weights(const std::string& model_dir, const Checkpoint& checkpoint,
                                    const LoadOptions& options, const ProblemSink& problem);

}  // namespace fourbit
