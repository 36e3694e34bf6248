// How a CUDA device's memory is shared out, up front (vLLM's --gpu-memory-utilization): the
// budget is that fraction of the card; the weights and the forward's workspace come first, the
// KV cache gets the rest. A model that does not fit is refused before it is loaded.
#pragma once

#include <cstdint>
#include <string>

#include "formats/model_config.h"

namespace fourbit {

// Device memory one forward step of up to `max_tokens` tokens (at most `max_logit_rows` of them
// with logits) uses besides the weights and the KV cache: activations, the MoE's intermediate
// rows, the logits, and a fixed allowance for cuBLAS and the allocator.
int64_t forward_workspace_bytes(const MiniMaxM2Config& config, int64_t max_tokens,
                                int64_t max_logit_rows);

struct DeviceMemoryPlan {
    int64_t budget = 0;     // utilization x total
    int64_t weights = 0;    // the checkpoint's tensors (its files' bytes)
    int64_t workspace = 0;  // forward_workspace_bytes
    int64_t kv_cache = 0;   // what is left; set after loading from what the device has free
    std::string summary() const;  // "weights 12.3 GiB, workspace 1.2 GiB, ..." for the log
};

// Before loading: refuses (an Error with every number) when the weights and the workspace
// exceed `utilization` of `total_bytes`.
DeviceMemoryPlan plan_device_memory(int64_t total_bytes, double utilization, int64_t weight_bytes,
                                    int64_t workspace_bytes, const std::string& what);

// After loading: the KV cache gets the budget minus what the device already holds (weights,
// CUDA context: total - free) minus the workspace; an Error when nothing is left.
int64_t kv_cache_bytes_left(DeviceMemoryPlan& plan, int64_t total_bytes, int64_t free_bytes);

}  // namespace fourbit
