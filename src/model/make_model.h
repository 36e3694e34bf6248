// MiniMax-M2-family checkpoints with random weights in the official layout, from tiny test
// models to the full M2.7 shape: what the tests, benchmarks and the quantizer's own tests run
// on, since nothing here downloads weights.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "formats/quantization_scheme.h"
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

// Every tensor of the official layout for `config`, in checkpoint order: BF16, or with `format`
// NVFP4 every linear module the seed ignore list does not name stored as that layout's tensors
// (nvfp4_tensors.h) in place of its `.weight`.
std::vector<TensorPlan> model_tensor_plan(const MiniMaxM2Config& config,
                                          QuantizationFormat format = QuantizationFormat::none,
                                          bool keep_edge_layers = true);

// The seed recipe's ignore list (recipe.md §1): lm_head, the embeddings, every MoE router
// (`block_sparse_moe.gate`, not the experts) and all of the first and the last layer stay BF16.
// In `format`'s spelling: fnmatch wildcards for ModelOpt (`*block_sparse_moe.gate`,
// `model.layers.0.*`), `re:` regexes for compressed-tensors (`re:.*block_sparse_moe\.gate$`,
// `re:model\.layers\.0\.`).
// keep_edge_layers false: only lm_head, the embeddings and the routers stay BF16 (every layer's
// attention and experts NVFP4, the shape llama.cpp's published CPU figures use).
std::vector<std::string> seed_ignore_list(const MiniMaxM2Config& config, QuantizationFormat format,
                                          bool keep_edge_layers = true);

// make-model's activation amax for every quantized module: random weights have no calibration
// data, so every input scale is that of an activation range of +-8 (8 / 2688, nudged as
// below). Random models' normed activations are of order 1 with rare values beyond 4, so
// W4A4 emulation clips little.
inline constexpr float kMakeModelInputAmax = 8.0f;

// The global (or input) scale fourbit's writers store for a calibrated amax: ModelOpt's
// amax / 2688, nudged up to the nearest float whose reciprocal round-trips
// (reciprocal_stable_scale), so that compressed-tensors' reciprocal stores it exactly and the two
// layouts convert into each other losslessly. The codes are quantized with this value.
float nvfp4_export_global_scale(float amax);

struct MakeModelOptions {
    std::string preset;
    // none: BF16. NVFP4: every linear module outside seed_ignore_list quantized with ModelOpt's
    // formulas from its own amax (a fused group's: q/k/v, an expert's w1/w3), the global scale
    // nudged up to the nearest value whose reciprocal round-trips (reciprocal_stable_scale), so
    // that both layouts store it exactly; input scales from kMakeModelInputAmax.
    QuantizationFormat format = QuantizationFormat::none;
    // The seed's first and last layers in BF16 (true), or NVFP4 like every other (false).
    bool keep_edge_layers_bf16 = true;
    std::string out_dir;
    uint64_t seed = 0;
    std::optional<int64_t> layers;
    uint64_t max_shard_bytes = 2'000'000'000;
    // Written to config.json and generation_config.json when given (the tokenizer's ids).
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;
};

// Writes config.json, generation_config.json and the sharded safetensors. Weights are uniform
// with variance 1/fan_in so that activations stay of order 1; norms are random around 1 and
// routing biases random, so that tests see their effect. NVFP4 modules are the quantized BF16
// weights of the same seed. Same seed, same bytes, on any machine. Memory holds about one
// tensor (and one quantized module) at a time, whatever the preset.
void make_model(const MakeModelOptions& options);

}  // namespace fourbit
