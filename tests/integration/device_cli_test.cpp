// --device, --kv-cache-dtype and bench-model through the real binary: a device the machine
// lacks or a misspelt one is a clean error naming it; the host runs; bench-model measures
// synthetic weights.
#include <gtest/gtest.h>

#include "integration/cli_helpers.h"
#include "tensor/cuda_memory.h"

namespace fourbit::cli_test {
namespace {

class DeviceCli : public CliTest {};

TEST_F(DeviceCli, ADeviceTheMachineLacksIsACleanError) {
    // No machine here has eight GPUs (the GPU machine has one, CI none).
    const CommandResult result = run_fourbit({"generate", "--model", tiny_dir().string(),
                                              "--prompt-ids", "1,2,3", "--device", "cuda:7"});
    EXPECT_TRUE(failed_cleanly(result, {"--device cuda:7", "CUDA device"}));
}

TEST_F(DeviceCli, AMisspeltDeviceIsACleanError) {
    const CommandResult result = run_fourbit({"generate", "--model", tiny_dir().string(),
                                              "--prompt-ids", "1,2,3", "--device", "tpu:0"});
    EXPECT_TRUE(failed_cleanly(result, {"tpu:0", "cpu, cuda or cuda:N"}));
}

TEST_F(DeviceCli, TheHostRunsWhenAskedFor) {
    const CommandResult result =
        run_fourbit({"generate", "--model", tiny_dir().string(), "--prompt-ids", "1,2,3",
                     "--device", "cpu", "--max-tokens", "4", "--output", "json"});
    ASSERT_TRUE(succeeded(result));
    EXPECT_EQ(generate_json(result)["token_ids"].size(), 4u) << result.out;
}

TEST_F(DeviceCli, BenchModelMeasuresSyntheticWeights) {
    const CommandResult result = run_fourbit({"bench-model", "--synthetic-weights", "tiny",
                                              "--device", "cpu", "-p", "16", "-b", "1,2", "-n",
                                              "3", "--context", "5", "-r", "1", "--profile-ops"});
    ASSERT_TRUE(succeeded(result));
    for (const char* needle : {"| pp16 |", "| tg3 @ 5 x1 |", "| tg3 @ 5 x2 |", "| moe_experts |",
                               "copy bandwidth"}) {
        EXPECT_NE(result.out.find(needle), std::string::npos) << needle << "\n" << result.out;
    }
}

// --trace-kernels lists a decode test's kernels as they ran in its CUDA graphs (the fused
// router among them at one token), with the time no kernel ran; on the host it is a clean error.
TEST_F(DeviceCli, BenchModelTracesTheDecodeKernelsOnAGpu) {
    const std::vector<std::string> args = {
        "bench-model", "--synthetic-weights", "tiny",    "-p", "16", "-b", "1", "-n", "3", "-r",
        "1",           "--trace-kernels",     "--device"};
    std::vector<std::string> on_host = args;
    on_host.push_back("cpu");
    EXPECT_TRUE(failed_cleanly(run_fourbit(on_host), {"--trace-kernels", "CUDA"}));
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    std::vector<std::string> on_gpu = args;
    on_gpu.push_back("cuda");
    const CommandResult result = run_fourbit(on_gpu);
    ASSERT_TRUE(succeeded(result));
    for (const char* needle : {"tg3 @ 512 x1: the step's kernels as they ran", "| router_kernel<",
                               "| (no kernel running) |"}) {
        EXPECT_NE(result.out.find(needle), std::string::npos) << needle << "\n" << result.out;
    }
}

// --kv-cache-dtype: the host runs a bf16 cache when asked (auto keeps f32 there), bench-model
// says which cache it measured, and a type it does not offer is a clean error.
TEST_F(DeviceCli, KvCacheDtypeIsChosenAndReported) {
    const CommandResult generated = run_fourbit(
        {"generate", "--model", tiny_dir().string(), "--prompt-ids", "1,2,3", "--device", "cpu",
         "--kv-cache-dtype", "bf16", "--max-tokens", "4", "--output", "json"});
    ASSERT_TRUE(succeeded(generated));
    EXPECT_EQ(generate_json(generated)["token_ids"].size(), 4u) << generated.out;
    for (const auto& [flag, shown] :
         {std::pair{"auto", "KV cache F32"}, {"bf16", "KV cache BF16"}}) {
        const CommandResult bench =
            run_fourbit({"bench-model", "--synthetic-weights", "tiny", "--device", "cpu",
                         "--kv-cache-dtype", flag, "-p", "16", "-b", "1", "-n", "2", "-r", "1"});
        ASSERT_TRUE(succeeded(bench));
        EXPECT_NE(bench.out.find(shown), std::string::npos) << flag << "\n" << bench.out;
    }
    const CommandResult bad =
        run_fourbit({"generate", "--model", tiny_dir().string(), "--prompt-ids", "1,2,3",
                     "--device", "cpu", "--kv-cache-dtype", "fp8"});
    EXPECT_TRUE(failed_cleanly(bad, {"--kv-cache-dtype", "fp8"}));
}

// On a GPU, a test whose KV cache the card cannot hold is refused with the numbers before
// anything is allocated (a million-token context for 4,096 sequences: terabytes).
TEST_F(DeviceCli, BenchModelRefusesAKvCacheTheGpuCannotHold) {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    const CommandResult result = run_fourbit({"bench-model", "--synthetic-weights", "tiny",
                                              "--device", "cuda", "-p", "16", "-b", "4096", "-n",
                                              "2", "--context", "1000000", "-r", "1"});
    EXPECT_TRUE(failed_cleanly(result, {"tg2 @ 1000000 x4096", "KV cache (BF16)", "GiB free"}));
}

// A zero where a count belongs is refused by name before any weights are made.
TEST_F(DeviceCli, BenchModelRefusesZeroCounts) {
    const std::pair<const char*, const char*> flags[] = {
        {"-p", "--prompt-lengths"}, {"-b", "--batch-sizes"}, {"-n", "--decode-tokens"}};
    for (const auto& [flag, name] : flags) {
        std::vector<std::string> args = {"bench-model",
                                         "--synthetic-weights",
                                         "tiny",
                                         "--device",
                                         "cpu",
                                         "-p",
                                         "16",
                                         "-b",
                                         "1",
                                         "-n",
                                         "2",
                                         "-r",
                                         "1"};
        for (size_t i = 0; i + 1 < args.size(); ++i) {
            if (args[i] == flag) args[i + 1] = std::string("0");  // not `= "0"`: GCC 12 bug 105329
        }
        const CommandResult result = run_fourbit(args);
        EXPECT_TRUE(failed_cleanly(result, {name, "0"})) << flag;
    }
}

TEST_F(DeviceCli, BenchModelTakesOneSourceOfWeights) {
    const CommandResult result = run_fourbit({"bench-model", "--synthetic-weights", "tiny",
                                              "--model", tiny_dir().string()});
    EXPECT_TRUE(failed_cleanly(result, {"--model or --synthetic-weights"}));
}

}  // namespace
}  // namespace fourbit::cli_test
