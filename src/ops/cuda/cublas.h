// The cuBLAS handle of the calling thread for the current device, bound to the current stream.
// CUDA builds only.
#pragma once

#include <cublas_v2.h>

namespace fourbit::cuda {

cublasHandle_t cublas_handle();

}  // namespace fourbit::cuda

// Runs a cuBLAS call and throws CudaError naming the call, its status and file:line.
#define FOURBIT_CUBLAS_CHECK(call)                                                           \
    do {                                                                                     \
        cublasStatus_t fourbit_cublas_status_ = (call);                                      \
        if (fourbit_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                               \
            ::fourbit::cuda::cublas_call_failed(fourbit_cublas_status_, #call, __FILE__,     \
                                                __LINE__);                                   \
        }                                                                                    \
    } while (0)

namespace fourbit::cuda {
[[noreturn]] void cublas_call_failed(cublasStatus_t status, const char* call, const char* file,
                                     int line);
}
