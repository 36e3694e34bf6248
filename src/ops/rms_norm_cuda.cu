// rms_norm on CUDA: one CTA per row; the sum of squares in double, as the CPU reference does,
// so both devices compute the same scale.
#include "ops/cuda/stream.h"
#include "ops/rms_norm.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kThreads = 256;

template <typename Weight>
__device__ __forceinline__ float weight_value(const Weight* w, int64_t i);
template <>
__device__ __forceinline__ float weight_value<float>(const float* w, int64_t i) {
    return w[i];
}
template <>
__device__ __forceinline__ float weight_value<uint16_t>(const uint16_t* w, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(w[i]) << 16);
}

template <typename Weight>
__global__ void rms_norm_kernel(const float* x, const Weight* w, float eps, int64_t d, float* y) {
    const float* row = x + blockIdx.x * d;
    float* out = y + blockIdx.x * d;
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < d; i += kThreads) sum += static_cast<double>(row[i]) * row[i];
    __shared__ double partial[kThreads];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    const float scale = static_cast<float>(1.0 / sqrt(partial[0] / d + eps));
    // y may be x: every thread has read its elements into the sum before the barrier above.
    for (int64_t i = threadIdx.x; i < d; i += kThreads) out[i] = row[i] * scale * weight_value(w, i);
}

// x += r, then y = rms_norm(x): the same double sum of squares as rms_norm_kernel, reduced the
// same way, so the scale is the one the two ops in sequence would compute.
template <typename Weight>
__global__ void add_rms_norm_kernel(float* x, const float* r, const Weight* w, float eps,
                                    int64_t d, float* y) {
    float* row = x + blockIdx.x * d;
    const float* residual = r + blockIdx.x * d;
    float* out = y + blockIdx.x * d;
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < d; i += kThreads) {
        const float value = row[i] + residual[i];
        row[i] = value;
        sum += static_cast<double>(value) * value;
    }
    __shared__ double partial[kThreads];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    const float scale = static_cast<float>(1.0 / sqrt(partial[0] / d + eps));
    for (int64_t i = threadIdx.x; i < d; i += kThreads) out[i] = row[i] * scale * weight_value(w, i);
}

}  // namespace

void add_rms_norm(Tensor& x, const Tensor& r, const Tensor& weight, float eps, Tensor& y) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    if (rows == 0) return;
    DeviceScope scope(x.device().index);
    if (weight.dtype() == DType::bf16) {
        add_rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, current_stream()>>>(
            x.data<float>(), r.data<float>(), weight.data<uint16_t>(), eps, d, y.data<float>());
    } else {
        add_rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, current_stream()>>>(
            x.data<float>(), r.data<float>(), weight.data<float>(), eps, d, y.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    if (rows == 0) return;
    DeviceScope scope(x.device().index);
    if (weight.dtype() == DType::bf16) {
        rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, current_stream()>>>(
            x.data<float>(), weight.data<uint16_t>(), eps, d, y.data<float>());
    } else {
        rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, current_stream()>>>(
            x.data<float>(), weight.data<float>(), eps, d, y.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
