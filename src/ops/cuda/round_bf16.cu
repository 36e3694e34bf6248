#include "ops/cuda/round_bf16.h"

#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

// Four values per thread: 16-byte loads when x is 16-byte aligned and n a multiple of 4 (the
// activations always are), element by element otherwise.
__global__ void round_to_bf16_kernel(const float* x, __nv_bfloat16* out, int64_t n) {
    const int64_t i = 4 * (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x);
    if (i + 3 < n && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
        const float4 v = *reinterpret_cast<const float4*>(x + i);
        reinterpret_cast<__nv_bfloat162*>(out + i)[0] = __floats2bfloat162_rn(v.x, v.y);
        reinterpret_cast<__nv_bfloat162*>(out + i)[1] = __floats2bfloat162_rn(v.z, v.w);
    } else {
        for (int64_t j = i; j < n && j < i + 4; ++j) out[j] = __float2bfloat16_rn(x[j]);
    }
}

__global__ void widen_bf16_kernel(const __nv_bfloat16* x, float* out, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __bfloat162float(x[i]);
}

}  // namespace

void round_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int64_t threads = (n + 3) / 4;
    round_to_bf16_kernel<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(x, out, n);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void widen_bf16(const __nv_bfloat16* x, float* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    widen_bf16_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(x, out, n);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
