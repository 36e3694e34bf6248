// The current device's attributes, which kernels' launches are chosen by on the host (shared
// memory and SMs for the NVFP4 GEMV and GEMM, the compute capability for wgmma). CUDA builds only.
#pragma once

#include <cuda_runtime_api.h>

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

}  // namespace fourbit::cuda
