// --device, --gpu-memory-utilization and --kv-cache-dtype, for the commands that run a model.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "model/weights.h"

namespace fourbit {

struct DeviceFlags {
    std::string device = "auto";
    double gpu_memory_utilization = 0.9;
    std::string kv_cache_dtype = "auto";
};

void add_device_flags(CLI::App& command, DeviceFlags& flags);

// The device the flags name: auto is cuda:0 when this build has the backend and the machine a
// GPU, else the host.
Device flags_device(const DeviceFlags& flags);

// The KV cache's element type for a model on `device`: f32 or bf16 as named; auto is bf16 on a
// CUDA device (vLLM's default, the model's activation type: half the memory of f32, so twice
// the context) and f32 on the host (the reference path, and CPU attention is not bound by the
// cache's bytes).
DType flags_kv_cache_dtype(const DeviceFlags& flags, Device device);

// The device the flags name (auto: cuda:0 when this build has the backend and the machine a
// GPU, else the host). On a CUDA device the checkpoint in `model_dir` is checked to fit before
// anything loads (runtime/device_memory_plan.h): its weights plus the workspace of steps of
// `max_tokens` tokens, `max_logit_rows` of them with logits.
Device resolve_device(const DeviceFlags& flags, const std::string& model_dir, int64_t max_tokens,
                      int64_t max_logit_rows);

}  // namespace fourbit
