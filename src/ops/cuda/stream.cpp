#include "ops/cuda/stream.h"

#include <cstdint>

#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {
thread_local cudaStream_t g_stream = nullptr;
}

cudaStream_t current_stream() { return g_stream; }

StreamScope::StreamScope(cudaStream_t stream) : previous_(g_stream) { g_stream = stream; }

StreamScope::~StreamScope() { g_stream = previous_; }

namespace {

// The stream-ordered pool keeps what it has mapped: by default it hands freed memory back to the
// driver at every synchronisation, and a step's next temporaries (the MoE's intermediate rows:
// 25 MB at 512 tokens) would be mapped anew each step.
void keep_pool_memory(cudaStream_t stream) {
    thread_local int configured_device = -1;
    int device = 0;
    FOURBIT_CUDA_CHECK(cudaGetDevice(&device));
    if (device == configured_device) return;
    // A pool's attributes cannot change while a graph is being recorded: the next Scratch
    // outside a recording does it.
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    FOURBIT_CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
    if (capturing != cudaStreamCaptureStatusNone) return;
    cudaMemPool_t pool = nullptr;
    FOURBIT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t keep_all = UINT64_MAX;
    FOURBIT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
    configured_device = device;
}

}  // namespace

Scratch::Scratch(size_t bytes) : stream_(current_stream()) {
    keep_pool_memory(stream_);
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
