// bench/kernel_trace.h's names (a demangled kernel signature shortened to what a table shows) and
// its per-step table of recorded spans. (The trace itself runs on a GPU:
// tests/integration/device_cli_test.cpp.)
#include <gtest/gtest.h>

#include "bench/kernel_trace.h"

namespace fourbit {
namespace {

TEST(KernelTrace, ShortNamesDropNamespacesAndParameters) {
    EXPECT_EQ(short_kernel_name("void fourbit::cuda::nvfp4::linear_kernel<1, 4, true>("
                                "fourbit::cuda::nvfp4::TilesView, float const*, int, "
                                "fourbit::cuda::nvfp4::RowParts)"),
              "linear_kernel<1, 4, true>");
    // Anonymous namespaces, and template arguments that name namespaced types.
    EXPECT_EQ(short_kernel_name("void fourbit::cuda::(anonymous namespace)::router_kernel<"
                                "unsigned short, __nv_bfloat16, float>(fourbit::cuda::(anonymous "
                                "namespace)::RouterParams, unsigned short const*)"),
              "router_kernel<unsigned short, __nv_bfloat16, float>");
    EXPECT_EQ(short_kernel_name("void fourbit::cuda::paged_attention::(anonymous namespace)::"
                                "prefill_attention_kernel<fourbit::cuda::paged_attention::(anonymous "
                                "namespace)::Bf16Tiles>(fourbit::cuda::paged_attention::"
                                "AttentionParams)"),
              "prefill_attention_kernel<fourbit::cuda::paged_attention::Bf16Tiles>");
    // A C name, or one that could not be demangled, stays as it is.
    EXPECT_EQ(short_kernel_name("copy_kernel"), "copy_kernel");
}

// Two steps' spans, in start order, with an overlap (which counts once as busy time) and two gaps
// (which count as idle).
TEST(KernelTrace, TableCountsCallsTimeAndIdlePerStep) {
    const std::vector<KernelSpan> spans = {{"a 1x1x1", 0, 100},
                                           {"b 8x1x1", 50, 160},
                                           {"a 1x1x1", 200, 300},
                                           {"c 2x1x1", 300, 310},
                                           {"b 8x1x1", 400, 500}};
    const KernelTable table = kernel_table(spans, 2);
    ASSERT_EQ(table.kernels.size(), 3u);
    // Most time first: b (110 + 100 ns), a (100 + 100), c (10), over two steps, in ms.
    EXPECT_EQ(table.kernels[0].name, "b 8x1x1");
    EXPECT_DOUBLE_EQ(table.kernels[0].ms_per_step, 105e-6);
    EXPECT_DOUBLE_EQ(table.kernels[0].calls_per_step, 1.0);
    EXPECT_EQ(table.kernels[1].name, "a 1x1x1");
    EXPECT_DOUBLE_EQ(table.kernels[1].ms_per_step, 100e-6);
    EXPECT_EQ(table.kernels[2].name, "c 2x1x1");
    EXPECT_DOUBLE_EQ(table.kernels[2].calls_per_step, 0.5);
    EXPECT_DOUBLE_EQ(table.kernels[2].ms_per_step, 5e-6);
    EXPECT_DOUBLE_EQ(table.ms_per_step, 250e-6);      // 0 .. 500 ns
    EXPECT_DOUBLE_EQ(table.idle_ms_per_step, 65e-6);  // 160 .. 200 and 310 .. 400
    EXPECT_TRUE(kernel_table({}, 2).kernels.empty());
}

}  // namespace
}  // namespace fourbit
