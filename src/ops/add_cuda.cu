// add on CUDA: x += y, one float per thread (coalesced; views need no particular alignment).
#include "ops/add.h"
#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

__global__ void add_kernel(float* x, const float* y, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

}  // namespace

void add(Tensor& x, const Tensor& y) {
    const int64_t n = x.numel();
    if (n == 0) return;
    DeviceScope scope(x.device().index);
    constexpr int kThreads = 256;
    add_kernel<<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0,
                 current_stream()>>>(x.data<float>(), y.data<float>(), n);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
