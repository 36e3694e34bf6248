// Device memory without CUDA headers: owned allocations (freed when the last handle goes),
// copies between any two devices, and what the machine has. In a build without the CUDA
// backend every call but the queries fails with a named error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace fourbit {

// True when the build has the CUDA backend (FOURBIT_CUDA); says nothing about a GPU.
bool cuda_compiled();
// CUDA devices this process can use; 0 without the backend, a driver or a GPU.
int cuda_device_count();

struct DeviceMemoryInfo {
    int64_t free_bytes = 0;
    int64_t total_bytes = 0;
};
// What CUDA device `index` has now (cudaMemGetInfo); an Error without the backend or device.
DeviceMemoryInfo cuda_memory_info(int index);

// Waits until CUDA device `index` has finished all its work.
void cuda_synchronize(int index);

// `bytes` of device memory on CUDA device `index` (cudaMalloc), freed with the last copy of the
// handle. Zero bytes still gives a valid, unique pointer.
std::shared_ptr<void> cuda_allocate(size_t bytes, int index);
// Zero-fills `bytes` at `data` on CUDA device `index`.
void cuda_zero(void* data, size_t bytes, int index);
// Copies `bytes` between any two devices; returns once the bytes are at `destination`.
// NOTE: the copy runs on the legacy default stream, so it waits for work queued on blocking
// streams (the ops' default) but not on a non-blocking stream: synchronise such a stream first.
void copy_bytes(void* destination, Device destination_device, const void* source,
                Device source_device, size_t bytes);

}  // namespace fourbit
