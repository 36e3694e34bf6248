#include <algorithm>

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
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        out[i] = __bfloat162float(x[i]);
    }
}

__global__ void split_to_bf16x3_kernel(const float* x, int64_t n, int64_t k, __nv_bfloat16* out) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / k, c = i % k;
        const float value = x[i];
        const __nv_bfloat16 hi = __float2bfloat16_rn(value);
        const float rest = value - __bfloat162float(hi);  // exact: the bits below hi's
        const __nv_bfloat16 mid = __float2bfloat16_rn(rest);
        __nv_bfloat16* row = out + 3 * r * k + c;
        row[0] = hi;
        row[k] = mid;
        row[2 * k] = __float2bfloat16_rn(rest - __bfloat162float(mid));  // exact too
    }
}

__global__ void repeat_bf16x3_kernel(const __nv_bfloat16* w, int64_t n, int64_t k,
                                     __nv_bfloat16* out) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / k, c = i % k;
        __nv_bfloat16* row = out + 3 * r * k + c;
        row[0] = row[k] = row[2 * k] = w[i];
    }
}

// 256-thread CTAs for a grid-stride loop over n elements: a thread each up to 4,096 CTAs.
unsigned stride_blocks(int64_t n) {
    return static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
}

}  // namespace

void round_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int64_t threads = (n + 3) / 4;
    round_to_bf16_kernel<<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(x, out,
                                                                                           n);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void widen_bf16(const __nv_bfloat16* x, float* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    widen_bf16_kernel<<<stride_blocks(n), 256, 0, stream>>>(x, out, n);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

const float* f32_rows(const Tensor& x, std::optional<Scratch>& storage) {
    if (x.dtype() == DType::f32) return x.data<float>();
    storage.emplace(static_cast<size_t>(x.numel()) * sizeof(float));
    widen_bf16(x.data<__nv_bfloat16>(), storage->as<float>(), x.numel(), current_stream());
    return storage->as<float>();
}

const __nv_bfloat16* bf16_rows(const Tensor& x, std::optional<Scratch>& storage) {
    if (x.dtype() == DType::bf16) return x.data<__nv_bfloat16>();
    storage.emplace(static_cast<size_t>(x.numel()) * sizeof(__nv_bfloat16));
    round_to_bf16(x.data<float>(), storage->as<__nv_bfloat16>(), x.numel(), current_stream());
    return storage->as<__nv_bfloat16>();
}

void split_to_bf16x3(const float* x, int64_t rows, int64_t k, __nv_bfloat16* out,
                     cudaStream_t stream) {
    if (rows * k == 0) return;
    split_to_bf16x3_kernel<<<stride_blocks(rows * k), 256, 0, stream>>>(x, rows * k, k, out);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void repeat_bf16x3(const __nv_bfloat16* w, int64_t rows, int64_t k, __nv_bfloat16* out,
                   cudaStream_t stream) {
    if (rows * k == 0) return;
    repeat_bf16x3_kernel<<<stride_blocks(rows * k), 256, 0, stream>>>(w, rows * k, k, out);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
