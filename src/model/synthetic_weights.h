// A model's weights made straight on a device from a seed, with no checkpoint: what benchmarks
// run when the shape is too big to write and load (the full M2.7 is 141 GB in NVFP4).
#pragma once

#include <cstdint>

#include "formats/model_config.h"
#include "model/weights.h"

namespace fourbit {

// Weights of `config`'s shapes on `device`: with `nvfp4`, every linear module the seed recipe
// quantizes (make_model's seed_ignore_list, edge layers as `keep_edge_layers_bf16` says) is NVFP4
// in the device's own layout (tiles and grouped experts on CUDA), the rest BF16. Values are
// random with make_model's scales (variance ~1/fan_in, norms near 1), so activations stay of
// order 1: the numbers mean nothing, the bytes and the work are those of the real model.
ModelWeights synthetic_weights(const MiniMaxM2Config& config, bool nvfp4,
                               bool keep_edge_layers_bf16, Device device, uint64_t seed);

}  // namespace fourbit
