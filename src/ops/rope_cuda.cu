// rope_neox on CUDA: one CTA per token, a thread per rotated pair (angles once per token), with the CPU reference's
// frequencies and angles (ops/cuda/norm_rope.cuh), so both devices rotate by the same numbers.
#include "ops/cuda/norm_rope.cuh"
#include "ops/cuda/stream.h"
#include "ops/rope.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

__global__ void rope_kernel(float* x, const int32_t* positions, RopeFrequencies frequencies,
                            int n_heads, int head_dim, int half, int64_t width) {
    __shared__ float cosines[kRopeMaxHalf], sines[kRopeMaxHalf];
    rope_angles(static_cast<float>(positions[blockIdx.x]), frequencies, half, cosines, sines);
    __syncthreads();
    rope_rotate(x + blockIdx.x * width, cosines, sines, n_heads, head_dim, half);
}

}  // namespace

void rope_neox(Tensor& x, const Tensor& positions, const RopeShape& shape) {
    const int64_t half = shape.rotary_dim / 2;
    if (x.dim(0) == 0 || half == 0) return;
    const RopeFrequencies frequencies = rope_frequencies(shape.theta, shape.rotary_dim);
    DeviceScope scope(x.device().index);
    rope_kernel<<<static_cast<unsigned>(x.dim(0)), 256, 0, current_stream()>>>(
        x.data<float>(), positions.data<int32_t>(), frequencies, static_cast<int>(shape.n_heads),
        static_cast<int>(shape.head_dim), static_cast<int>(half), x.dim(1));
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
