#include "ops/cuda/stream.h"

#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {
thread_local cudaStream_t g_stream = nullptr;
}

cudaStream_t current_stream() { return g_stream; }

StreamScope::StreamScope(cudaStream_t stream) : previous_(g_stream) { g_stream = stream; }

StreamScope::~StreamScope() { g_stream = previous_; }

Scratch::Scratch(size_t bytes) : stream_(current_stream()) {
    FOURBIT_CUDA_CHECK(cudaMallocAsync(&data_, bytes == 0 ? 256 : bytes, stream_));
}

Scratch::~Scratch() {
    // Freed once the work queued before it on the stream is done; a destructor must not throw.
    cudaFreeAsync(data_, stream_);
}

}  // namespace fourbit::cuda

namespace fourbit::cuda {

DeviceScope::DeviceScope(int index) {
    FOURBIT_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != index) FOURBIT_CUDA_CHECK(cudaSetDevice(index));
}

DeviceScope::~DeviceScope() {
    int current = previous_;
    cudaGetDevice(&current);
    if (current != previous_) cudaSetDevice(previous_);
}

}  // namespace fourbit::cuda
