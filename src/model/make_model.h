// MiniMax-M2-family checkpoints with random weights in the official layout, from tiny test
// models to the full M2.7 shape: what the tests, benchmarks and the quantizer's own tests run
// on, since nothing here downloads weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "formats/safetensors.h"

namespace fourbit {

// Presets (fixed shapes, so results compare with peer figures on the same shapes):
//   tiny        hidden 256, 4 layers, 8/2 heads of 64 (rotary 32), 16 experts top-4, FFN 128
//   small       hidden 1024, 8 layers, 16/4 heads of 128 (rotary 64), 32 experts top-4,
//               FFN 512, vocabulary 8192
//   m2.7-slice  the M2.7 dimensions with `layers` layers (default 4)
//   m2.7        the same with 62 layers
// `layers` overrides the layer count of any preset. Unknown preset -> Error.
MiniMaxM2Config preset_config(const std::string& preset, std::optional<int64_t> layers);

// Every tensor of the official layout for `config`, in checkpoint order, BF16.
std::vector<TensorPlan> model_tensor_plan(const MiniMaxM2Config& config);

struct MakeModelOptions {
    std::string preset;
    std::string out_dir;
    uint64_t seed = 0;
    std::optional<int64_t> layers;
    uint64_t max_shard_bytes = 2'000'000'000;
    // Written to config.json and generation_config.json when given (the tokenizer's ids).
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;
};

// Writes config.json, generation_config.json and the sharded BF16 safetensors. Weights are
// uniform with variance 1/fan_in so that activations stay of order 1; norms are random around 1 and routing
// biases random, so that tests see their effect. Same seed, same bytes, on any machine.
void make_model(const MakeModelOptions& options);

}  // namespace fourbit
