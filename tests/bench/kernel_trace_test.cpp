// bench/kernel_trace.h's names: a demangled kernel signature shortened to what a table shows.
// (The trace itself runs on a GPU: tests/integration/device_cli_test.cpp.)
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

}  // namespace
}  // namespace fourbit
