#include "ops/cuda/stream.h"
#include "ops/random_fill.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

template <bool kBf16>
__global__ void uniform_kernel(void* data, int64_t n, float low, float high, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const float u = static_cast<float>(random_fill_hash(seed, i) >> 40) * 0x1p-24f;
        const float value = low + (high - low) * u;
        if constexpr (kBf16) {
            // Round to nearest even, as the host's f32_to_bf16 (values here are finite).
            const uint32_t bits = __float_as_uint(value);
            static_cast<uint16_t*>(data)[i] =
                static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
        } else {
            static_cast<float*>(data)[i] = value;
        }
    }
}

__global__ void bytes_kernel(uint8_t* data, int64_t n, uint32_t low, uint32_t span, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        data[i] = static_cast<uint8_t>(low + (random_fill_hash(seed, i) >> 32) % span);
    }
}

constexpr unsigned kBlocks = 2048, kThreads = 256;

}  // namespace

void fill_uniform(Tensor& tensor, float low, float high, uint64_t seed) {
    if (tensor.numel() == 0) return;
    DeviceScope scope(tensor.device().index);
    if (tensor.dtype() == DType::bf16) {
        uniform_kernel<true><<<kBlocks, kThreads, 0, current_stream()>>>(
            tensor.data<void>(), tensor.numel(), low, high, seed);
    } else {
        uniform_kernel<false><<<kBlocks, kThreads, 0, current_stream()>>>(
            tensor.data<void>(), tensor.numel(), low, high, seed);
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void fill_bytes(Tensor& tensor, uint8_t low, uint8_t high, uint64_t seed) {
    if (tensor.size_bytes() == 0) return;
    DeviceScope scope(tensor.device().index);
    bytes_kernel<<<kBlocks, kThreads, 0, current_stream()>>>(
        tensor.data<uint8_t>(), static_cast<int64_t>(tensor.size_bytes()), low,
        static_cast<uint32_t>(high - low) + 1, seed);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
