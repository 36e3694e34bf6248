// The device memory plan: the workspace grows with the step's tokens, a model that does not fit
// is refused with every number, and the KV cache gets exactly what the budget leaves.
#include "runtime/device_memory_plan.h"

#include <gtest/gtest.h>

#include "model/make_model.h"
#include "util/error.h"

namespace fourbit {
namespace {

constexpr int64_t kGiB = int64_t(1) << 30;

TEST(DeviceMemoryPlan, WorkspaceGrowsWithTokensAndLogitRows) {
    const MiniMaxM2Config c = preset_config("m2.7", std::nullopt);
    const int64_t one = forward_workspace_bytes(c, 1, 1);
    const int64_t many = forward_workspace_bytes(c, 2048, 16);
    const int64_t rows = forward_workspace_bytes(c, 2048, 2048);
    EXPECT_GT(many, one);
    EXPECT_GT(rows, many);
    // 2048 more logit rows of the 200,064-token vocabulary (and hidden rows) in f32.
    EXPECT_EQ(rows - many, 4 * (2048 - 16) * (c.vocab_size + c.hidden_size));
}

TEST(DeviceMemoryPlan, AModelThatDoesNotFitIsRefusedWithTheNumbers) {
    try {
        plan_device_memory(80 * kGiB, 0.9, 141 * kGiB, 2 * kGiB, "m2.7 on cuda:0");
        FAIL() << "141 GiB of weights planned into 72 GiB";
    } catch (const Error& error) {
        const std::string message = error.what();
        for (const char* needle : {"m2.7 on cuda:0", "141.00 GiB", "2.00 GiB", "72.00 GiB", "90%",
                                   "80.00 GiB", "--gpu-memory-utilization"}) {
            EXPECT_NE(message.find(needle), std::string::npos) << needle << ": " << message;
        }
    }
    EXPECT_THROW(plan_device_memory(80 * kGiB, 1.5, kGiB, kGiB, "x"), Error);
    EXPECT_THROW(plan_device_memory(80 * kGiB, 0.0, kGiB, kGiB, "x"), Error);
}

TEST(DeviceMemoryPlan, TheKvCacheGetsWhatTheBudgetLeaves) {
    DeviceMemoryPlan plan = plan_device_memory(100 * kGiB, 0.9, 60 * kGiB, 4 * kGiB, "m");
    EXPECT_EQ(plan.budget, 90 * kGiB);
    // 62 GiB held after loading (weights and context): 90 - 62 - 4 = 24 GiB for the cache.
    EXPECT_EQ(kv_cache_bytes_left(plan, 100 * kGiB, 38 * kGiB), 24 * kGiB);
    EXPECT_EQ(plan.kv_cache, 24 * kGiB);
    EXPECT_NE(plan.summary().find("KV cache 24.00 GiB"), std::string::npos) << plan.summary();
    EXPECT_THROW(kv_cache_bytes_left(plan, 100 * kGiB, 12 * kGiB), Error);  // 88 GiB held
}

}  // namespace
}  // namespace fourbit
