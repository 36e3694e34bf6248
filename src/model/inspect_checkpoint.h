// What a checkpoint holds and everything wrong with it, for `fourbit inspect`: the same walk as
// load_model_weights, but collecting every problem instead of stopping at the first, plus the
// checks only an inspection makes (tensors the model never reads, input scales on some NVFP4
// modules but not on others).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/nvfp4_tensors.h"
#include "model/checked_weights.h"

namespace fourbit {

// Modules of one storage kind ("nvfp4", "bf16", "f32", "fp8", "missing").
struct StorageKindSummary {
    size_t n_modules = 0;
    uint64_t bytes_on_disk = 0;    // every tensor of those modules
    uint64_t bytes_in_memory = 0;  // what the loaded weights hold (zero-copy: codes and scales)
};

// Per layer, module counts by kind for each part of the block.
struct LayerSummary {
    std::map<std::string, size_t> attention;  // q, k, v, o
    std::map<std::string, size_t> router;     // block_sparse_moe.gate
    std::map<std::string, size_t> experts;    // every expert's w1, w2, w3
};

struct CheckpointReport {
    std::string dir;
    MiniMaxM2Config config;
    QuantizationScheme scheme;
    std::vector<LinearRecord> linears;
    std::map<std::string, StorageKindSummary> kinds;
    std::vector<LayerSummary> layers;
    std::map<std::string, size_t> lm_head;  // kind -> 1
    uint64_t other_bytes = 0;               // embeddings, norms, routing biases
    uint64_t unused_bytes = 0;              // tensors the model does not read
    size_t n_unused = 0;
    size_t n_tensors = 0;
    uint64_t bytes_on_disk = 0;  // all tensor data
    std::vector<CheckpointProblem> anomalies;

    bool clean() const { return anomalies.empty(); }
};

// Kind label of one module: "nvfp4", "fp8", "missing" or the dense dtype ("bf16", "f32").
std::string storage_kind(const LinearRecord& record);

// Errors only where nothing can be inspected (no directory, unreadable safetensors or
// config.json, a quantization config fourbit does not know); everything else is an anomaly.
CheckpointReport inspect_checkpoint(const std::string& dir);

}  // namespace fourbit
