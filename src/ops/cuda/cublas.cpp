#include "ops/cuda/cublas.h"

#include <fmt/format.h>

#include <map>

#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

void cublas_call_failed(cublasStatus_t status, const char* call, const char* file, int line) {
    throw CudaError(fmt::format("cuBLAS error {} ({}) in `{}` at {}:{}", cublasGetStatusName(status),
                                cublasGetStatusString(status), call, file, line));
}

cublasHandle_t cublas_handle() {
    // One handle per thread and device: a handle is not safe to share between threads. They live
    // until the thread ends (destroying them at exit races the CUDA context's own teardown).
    thread_local std::map<int, cublasHandle_t> handles;
    int device = 0;
    FOURBIT_CUDA_CHECK(cudaGetDevice(&device));
    cublasHandle_t& handle = handles[device];
    if (handle == nullptr) FOURBIT_CUBLAS_CHECK(cublasCreate(&handle));
    FOURBIT_CUBLAS_CHECK(cublasSetStream(handle, current_stream()));
    return handle;
}

}  // namespace fourbit::cuda
