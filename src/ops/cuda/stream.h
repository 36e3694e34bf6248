// The CUDA stream the calling thread's ops queue on. The legacy default stream unless a
// StreamScope says otherwise (a benchmark or, later, the engine capturing a graph on its own
// stream). CUDA builds only.
#pragma once

#include <cuda_runtime_api.h>

namespace fourbit::cuda {

cudaStream_t current_stream();

// Sets the calling thread's stream for the scope, then restores the previous one.
class StreamScope {
public:
    explicit StreamScope(cudaStream_t stream);
    ~StreamScope();
    StreamScope(const StreamScope&) = delete;
    StreamScope& operator=(const StreamScope&) = delete;

private:
    cudaStream_t previous_;
};

// Device memory for one op's temporaries, stream-ordered (cudaMallocAsync / cudaFreeAsync on
// the current stream): no device-wide synchronisation as cudaFree would do, and it can be
// captured in a graph.
class Scratch {
public:
    explicit Scratch(size_t bytes);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    template <typename T>
    T* as() const {
        return static_cast<T*>(data_);
    }

private:
    void* data_ = nullptr;
    cudaStream_t stream_;
};

}  // namespace fourbit::cuda

namespace fourbit::cuda {

// Makes CUDA device `index` current for the scope (an op runs where its tensors are).
class DeviceScope {
public:
    explicit DeviceScope(int index);
    ~DeviceScope();
    DeviceScope(const DeviceScope&) = delete;
    DeviceScope& operator=(const DeviceScope&) = delete;

private:
    int previous_ = 0;
};

}  // namespace fourbit::cuda
