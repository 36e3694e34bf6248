#include "runtime/device_memory_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/error.h"

namespace fourbit {

namespace {

// cuBLAS's workspace, the stream-ordered allocator's pool slack and the CUDA graphs' nodes.
constexpr int64_t kFixedAllowance = int64_t(512) << 20;

std::string gib(int64_t bytes) { return fmt::format("{:.2f} GiB", bytes / double(1 << 30)); }

}  // namespace

int64_t forward_workspace_bytes(const MiniMaxM2Config& c, int64_t max_tokens,
                                int64_t max_logit_rows) {
    // Per token, f32: residual, normed input, block output, q, attended, k, v, router logits,
    // routing ids and weights, and the MoE's k intermediate and k output rows (grouped MoE).
    const int64_t per_token = 3 * c.hidden_size + 2 * c.q_width() + 2 * c.kv_width() +
                              c.num_local_experts + 2 * c.num_experts_per_tok +
                              c.num_experts_per_tok * (c.intermediate_size + c.hidden_size);
    const int64_t rows = std::min(max_tokens, max_logit_rows);
    return 4 * (max_tokens * per_token + rows * (c.hidden_size + c.vocab_size)) + kFixedAllowance;
}

std::string DeviceMemoryPlan::summary() const {
    return fmt::format("budget {}: weights {}, workspace {}, KV cache {}", gib(budget),
                       gib(weights), gib(workspace), gib(kv_cache));
}

DeviceMemoryPlan plan_device_memory(int64_t total_bytes, double utilization, int64_t weight_bytes,
                                    int64_t workspace_bytes, const std::string& what) {
    if (!(utilization > 0.0 && utilization <= 1.0)) {
        fail("--gpu-memory-utilization {} is not in (0, 1]", utilization);
    }
    DeviceMemoryPlan plan;
    plan.budget = static_cast<int64_t>(utilization * static_cast<double>(total_bytes));
    plan.weights = weight_bytes;
    plan.workspace = workspace_bytes;
    if (weight_bytes + workspace_bytes > plan.budget) {
        fail("{} does not fit: weights {} + workspace {} = {}, but the budget is {} ({:.0f}% of "
             "the device's {}); raise --gpu-memory-utilization, lower --max-num-batched-tokens, "
             "or use a device with more memory",
             what, gib(weight_bytes), gib(workspace_bytes), gib(weight_bytes + workspace_bytes),
             gib(plan.budget), 100 * utilization, gib(total_bytes));
    }
    return plan;
}

int64_t kv_cache_bytes_left(DeviceMemoryPlan& plan, int64_t total_bytes, int64_t free_bytes) {
    const int64_t held = total_bytes - free_bytes;
    plan.kv_cache = plan.budget - held - plan.workspace;
    if (plan.kv_cache <= 0) {
        fail("no device memory left for the KV cache: budget {}, already held {} (weights and "
             "CUDA context), workspace {}; raise --gpu-memory-utilization",
             gib(plan.budget), gib(held), gib(plan.workspace));
    }
    return plan.kv_cache;
}

}  // namespace fourbit
