// Device memory through the CUDA runtime; every call checked (tensor/cuda_check.h).
#include "tensor/cuda_memory.h"

#include <fmt/format.h>

#include <cstring>

#include "tensor/cuda_check.h"

namespace fourbit {

namespace {

// Makes `index` the calling thread's current device for the scope, then restores the old one:
// allocations and copies must not move another caller's current device.
class DeviceScope {
public:
    explicit DeviceScope(int index) {
        FOURBIT_CUDA_CHECK(cudaGetDevice(&previous_));
        if (previous_ != index) FOURBIT_CUDA_CHECK(cudaSetDevice(index));
        changed_ = previous_ != index;
    }
    ~DeviceScope() {
        if (changed_) cudaSetDevice(previous_);
    }
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;

private:
    int previous_ = 0;
    bool changed_ = false;
};

}  // namespace

void cuda_call_failed(cudaError_t status, const char* call, const char* file, int line) {
    // Clear the thread's last error (it holds this one) so that a later launch check does not
    // report it again; sticky errors (a kernel fault) stay with the context regardless.
    cudaGetLastError();
    throw CudaError(fmt::format("CUDA error {} ({}) in `{}` at {}:{}", cudaGetErrorName(status),
                                cudaGetErrorString(status), call, file, line));
}

bool cuda_compiled() { return true; }

int cuda_device_count() {
    int count = 0;
    // No driver or no GPU is an answer here, not a failure: the count is 0.
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky status so later calls are not blamed
        return 0;
    }
    return count;
}

DeviceMemoryInfo cuda_memory_info(int index) {
    DeviceScope scope(index);
    size_t free_bytes = 0, total_bytes = 0;
    FOURBIT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return {static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes)};
}

void cuda_synchronize(int index) {
    DeviceScope scope(index);
    FOURBIT_CUDA_CHECK(cudaDeviceSynchronize());
}

std::shared_ptr<void> cuda_allocate(size_t bytes, int index) {
    DeviceScope scope(index);
    void* data = nullptr;
    FOURBIT_CUDA_CHECK(cudaMalloc(&data, bytes == 0 ? 256 : bytes));
    return std::shared_ptr<void>(data, [index](void* pointer) {
        // A destructor must not throw: a failed free (the context already torn down at exit)
        // is ignored.
        int previous = 0;
        cudaGetDevice(&previous);
        cudaSetDevice(index);
        cudaFree(pointer);
        cudaSetDevice(previous);
    });
}

void cuda_zero(void* data, size_t bytes, int index) {
    DeviceScope scope(index);
    FOURBIT_CUDA_CHECK(cudaMemset(data, 0, bytes));
}

void copy_bytes(void* destination, Device destination_device, const void* source,
                Device source_device, size_t bytes) {
    if (bytes == 0) return;
    if (destination_device.is_cuda() && source_device.is_cuda() &&
        destination_device.index != source_device.index) {
        FOURBIT_CUDA_CHECK(cudaMemcpyPeer(destination, destination_device.index, source,
                                          source_device.index, bytes));
        return;
    }
    // cudaMemcpyDefault infers the direction from the pointers (unified addressing, every
    // 64-bit CUDA platform). It returns once a copy touching the host is done, but a copy
    // within one device only once it is queued: that one is waited for below, as the contract
    // says.
    const Device device = destination_device.is_cuda() ? destination_device : source_device;
    if (device.is_host()) {
        std::memcpy(destination, source, bytes);
        return;
    }
    DeviceScope scope(device.index);
    FOURBIT_CUDA_CHECK(cudaMemcpy(destination, source, bytes, cudaMemcpyDefault));
    if (destination_device.is_cuda() && source_device.is_cuda()) {
        FOURBIT_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    }
}

}  // namespace fourbit
