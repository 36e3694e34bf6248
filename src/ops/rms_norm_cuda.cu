// rms_norm and add_rms_norm on CUDA: one CTA per row (ops/cuda/norm_rope.cuh's arithmetic: the
// sum of squares in double, as the CPU reference does, so both devices compute the same scale).
// Both let the next kernel start at once: a decode step's q/k/v projection, launched with PDL,
// streams its weights while the norm runs.
#include "ops/cuda/norm_rope.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/stream.h"
#include "ops/rms_norm.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

template <typename Weight>
__global__ void rms_norm_kernel(const float* x, const Weight* w, float eps, int64_t d, float* y) {
    allow_dependents();  // the next projection's weights start loading (ops/cuda/pdl.cuh)
    __shared__ double partial[kNormWarps];
    const float* row = x + blockIdx.x * d;
    float* out = y + blockIdx.x * d;
    const float scale = rms_scale(row, d, eps, partial);
    // y may be x: every element was read into the sum before rms_scale's barriers.
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) out[i] = row[i] * scale * norm_weight(w, i);
}

// x += r, then y = rms_norm(x): each thread sums the elements it will read back, so the scale
// is the one the two ops in sequence compute.
template <typename Weight>
__global__ void add_rms_norm_kernel(float* x, const float* r, const Weight* w, float eps,
                                    int64_t d, float* y) {
    allow_dependents();
    __shared__ double partial[kNormWarps];
    float* row = x + blockIdx.x * d;
    const float* residual = r + blockIdx.x * d;
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) row[i] += residual[i];
    const float scale = rms_scale(row, d, eps, partial);
    float* out = y + blockIdx.x * d;
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) out[i] = row[i] * scale * norm_weight(w, i);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    if (rows == 0) return;
    DeviceScope scope(x.device().index);
    const unsigned blocks = static_cast<unsigned>(rows);
    if (weight.dtype() == DType::bf16) {
        rms_norm_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
            x.data<float>(), weight.data<uint16_t>(), eps, d, y.data<float>());
    } else {
        rms_norm_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
            x.data<float>(), weight.data<float>(), eps, d, y.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void add_rms_norm(Tensor& x, const Tensor& r, const Tensor& weight, float eps, Tensor& y) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    if (rows == 0) return;
    DeviceScope scope(x.device().index);
    const unsigned blocks = static_cast<unsigned>(rows);
    if (weight.dtype() == DType::bf16) {
        add_rms_norm_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
            x.data<float>(), r.data<float>(), weight.data<uint16_t>(), eps, d, y.data<float>());
    } else {
        add_rms_norm_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
            x.data<float>(), r.data<float>(), weight.data<float>(), eps, d, y.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
