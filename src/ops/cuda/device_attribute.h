// The current device's attributes, which kernels' launches are chosen by on the host (shared
// memory and SMs for the NVFP4 GEMV and GEMM, the compute capability for wgmma). CUDA builds only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdlib>

namespace fourbit::cuda {

// `attribute` of the current device; 0 if the runtime cannot say.
inline int current_device_attribute(cudaDeviceAttr attribute) {
    int device = 0, value = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&value, attribute, device) != cudaSuccess) {
        return 0;
    }
    return value;
}

// The shared memory one CTA may opt into on the current device, in bytes: 227 KB on an H100 or
// H200, 99 KB on an sm_120 card or a GB10. FOURBIT_CUDA_SHARED_LIMIT (bytes) lowers it, so that
// the choices kernels make for the smaller cards (fewer pipeline stages, a fused kernel left
// out) run and are tested on a Hopper.
inline size_t shared_memory_per_cta() {
    size_t limit =
        static_cast<size_t>(current_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
    if (const char* cap = std::getenv("FOURBIT_CUDA_SHARED_LIMIT")) {
        const size_t bytes = std::strtoull(cap, nullptr, 10);
        if (bytes > 0 && bytes < limit) limit = bytes;
    }
    return limit;
}

}  // namespace fourbit::cuda
