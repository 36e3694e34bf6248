// Checking CUDA runtime calls: every call's status becomes a CudaError naming the call, the
// error and where it was made. Include only from files compiled with the CUDA backend.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace fourbit {

// A failed CUDA call: not bad input but a device fault (out of memory, a launch failure, a
// kernel's bad access), so it is its own type rather than fourbit::Error.
class CudaError : public std::runtime_error {
public:
    explicit CudaError(const std::string& message) : std::runtime_error(message) {}
};

[[noreturn]] void cuda_call_failed(cudaError_t status, const char* call, const char* file,
                                   int line);

}  // namespace fourbit

// Runs a CUDA runtime call and throws CudaError (with the call's text, file:line) on failure.
#define FOURBIT_CUDA_CHECK(call)                                                         \
    do {                                                                                 \
        cudaError_t fourbit_status_ = (call);                                            \
        if (fourbit_status_ != cudaSuccess) {                                            \
            ::fourbit::cuda_call_failed(fourbit_status_, #call, __FILE__, __LINE__);     \
        }                                                                                \
    } while (0)

// After a kernel launch: a bad configuration shows up only in the last error.
#define FOURBIT_CUDA_CHECK_LAUNCH() FOURBIT_CUDA_CHECK(cudaGetLastError())
