#include "cli/device_flags.h"

#include <filesystem>

#include "runtime/device_memory_plan.h"
#include "tensor/cuda_memory.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

void add_device_flags(CLI::App& command, DeviceFlags& flags) {
    command.add_option("--device", flags.device, "auto, cpu, cuda or cuda:N")
        ->capture_default_str();
    command
        .add_option("--gpu-memory-utilization", flags.gpu_memory_utilization,
                    "fraction of the GPU's memory for weights, workspace and KV cache")
        ->capture_default_str();
    command
        .add_option("--kv-cache-dtype", flags.kv_cache_dtype,
                    "the KV cache's element type: auto (bf16 on a GPU, f32 on the CPU), bf16 "
                    "(half the memory) or f32")
        ->check(CLI::IsMember({"auto", "bf16", "f32"}))
        ->capture_default_str();
}

DType flags_kv_cache_dtype(const DeviceFlags& flags, Device device) {
    if (flags.kv_cache_dtype == "bf16") return DType::bf16;
    if (flags.kv_cache_dtype == "f32") return DType::f32;
    if (flags.kv_cache_dtype == "auto") return device.is_cuda() ? DType::bf16 : DType::f32;
    fail("--kv-cache-dtype {}: auto, bf16 or f32", flags.kv_cache_dtype);
}

Device flags_device(const DeviceFlags& flags) {
    if (flags.device == "auto") return cuda_device_count() > 0 ? Device::cuda(0) : Device::host();
    const Device device = parse_device(flags.device);
    if (device.is_cuda()) {
        if (!cuda_compiled()) {
            fail("--device {}: this build has no CUDA backend (configure with -DFOURBIT_CUDA=ON)",
                 flags.device);
        }
        const int count = cuda_device_count();
        if (device.index >= count) {
            fail("--device {}: this machine has {} CUDA device{}", flags.device, count,
                 count == 1 ? "" : "s");
        }
    }
    return device;
}

Device resolve_device(const DeviceFlags& flags, const std::string& model_dir, int64_t max_tokens,
                      int64_t max_logit_rows) {
    const Device device = flags_device(flags);
    if (device.is_host()) return device;
    int64_t weight_bytes = 0;
    for (const auto& entry : std::filesystem::directory_iterator(model_dir)) {
        if (entry.path().extension() == ".safetensors") weight_bytes += entry.file_size();
    }
    const DeviceMemoryInfo info = cuda_memory_info(device.index);
    const DeviceMemoryPlan plan = plan_device_memory(
        info.total_bytes, flags.gpu_memory_utilization, weight_bytes,
        forward_workspace_bytes(load_minimax_m2_config(model_dir), max_tokens, max_logit_rows),
        model_dir + " on " + device_text(device));
    spdlog::info("{} on {}: {}", model_dir, device_text(device), plan.summary());
    return device;
}

}  // namespace fourbit
