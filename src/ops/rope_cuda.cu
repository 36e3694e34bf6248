// rope_neox on CUDA: one CTA per token, a thread per rotated pair. Frequencies are made on the
// host exactly as the CPU reference makes them, and angles, cos and sin are computed the same
// way (f32 angle, cos/sin in double), so both devices rotate by the same numbers.
#include <cmath>

#include "ops/cuda/stream.h"
#include "ops/rope.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kMaxHalf = kRopeCudaMaxRotaryDim / 2;

struct Frequencies {
    float inv_freq[kMaxHalf];
};

__global__ void rope_kernel(float* x, const int32_t* positions, Frequencies frequencies,
                            int n_heads, int head_dim, int half, int64_t width) {
    float* token = x + blockIdx.x * width;
    const float position = static_cast<float>(positions[blockIdx.x]);
    for (int index = threadIdx.x; index < n_heads * half; index += blockDim.x) {
        const int h = index / half, i = index % half;
        const float angle = position * frequencies.inv_freq[i];
        const float c = static_cast<float>(cos(static_cast<double>(angle)));
        const float s = static_cast<float>(sin(static_cast<double>(angle)));
        float* head = token + h * head_dim;
        const float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

}  // namespace

void rope_neox(Tensor& x, const Tensor& positions, const RopeShape& shape) {
    const int64_t half = shape.rotary_dim / 2;
    if (x.dim(0) == 0 || half == 0) return;
    Frequencies frequencies{};
    for (int64_t i = 0; i < half; ++i) {
        frequencies.inv_freq[i] = static_cast<float>(
            1.0 / std::pow(shape.theta, static_cast<double>(2 * i) / shape.rotary_dim));
    }
    DeviceScope scope(x.device().index);
    rope_kernel<<<static_cast<unsigned>(x.dim(0)), 256, 0, current_stream()>>>(
        x.data<float>(), positions.data<int32_t>(), frequencies, static_cast<int>(shape.n_heads),
        static_cast<int>(shape.head_dim), static_cast<int>(half), x.dim(1));
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
