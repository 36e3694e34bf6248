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

// FOURBIT_CUDA_SHARED_LIMIT (bytes), or 0 where it is not set: the shared memory a CTA may have
// on a smaller card, which a larger one then behaves as, so that the choices kernels make for
// the smaller cards (fewer pipeline stages, a fused kernel left out, rows not staged) run and
// are tested on a Hopper.
inline size_t emulated_shared_limit() {
    const char* cap = std::getenv("FOURBIT_CUDA_SHARED_LIMIT");
    return cap == nullptr ? 0 : static_cast<size_t>(std::strtoull(cap, nullptr, 10));
}

// The shared memory one CTA may opt into on the current device, in bytes: 227 KB on an H100 or
// H200, 99 KB on an sm_120 card or a GB10; lowered by FOURBIT_CUDA_SHARED_LIMIT.
inline size_t shared_memory_per_cta() {
    const size_t limit =
        static_cast<size_t>(current_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin));
    const size_t emulated = emulated_shared_limit();
    return emulated > 0 && emulated < limit ? emulated : limit;
}

// The shared memory of one SM: 228 KB on an H100 or H200, 100 KB on an sm_120 card or a GB10
// (a CTA's limit and the 1 KB the SM keeps for each CTA); with FOURBIT_CUDA_SHARED_LIMIT, that
// limit's card's.
inline size_t shared_memory_per_sm() {
    const size_t per_sm =
        static_cast<size_t>(current_device_attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor));
    const size_t emulated = emulated_shared_limit();
    return emulated > 0 && emulated + 1024 < per_sm ? emulated + 1024 : per_sm;
}

// Lets `kernel` take `bytes` of dynamic shared memory, or refuses as a card does
// (cudaErrorInvalidValue) where they and the kernel's static shared memory together pass
// shared_memory_per_cta(): under FOURBIT_CUDA_SHARED_LIMIT a Hopper then fails every launch that
// the smaller card would, and the tests run there catch it; a caller with another way to do the
// work takes the refusal as its cue. Any nonzero `bytes` opts in: past 48 KB of static and
// dynamic shared memory together a kernel must (the MoE kernels' static partial sums, 4 and 16
// KB, made a launch fail below 48 KB of dynamic memory: the down kernel at top 8 and an
// intermediate width of 2,816 .. 3,008).
template <typename Kernel>
inline cudaError_t opt_in_shared_memory(Kernel kernel, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    cudaFuncAttributes attributes{};
    const cudaError_t status =
        cudaFuncGetAttributes(&attributes, reinterpret_cast<const void*>(kernel));
    if (status != cudaSuccess) return status;
    if (bytes + attributes.sharedSizeBytes > shared_memory_per_cta()) return cudaErrorInvalidValue;
    return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                static_cast<int>(bytes));
}

}  // namespace fourbit::cuda
