// attention_prologue on CUDA: one CTA per token does the QK-norm of q and k, the RoPE of both
// and the cache write, with the arithmetic of rms_norm_cuda.cu and rope_cuda.cu step for step
// (double sums of squares reduced the same way, f32 angles, cos and sin in double), so the
// result is bitwise that of those ops in sequence.
#include <cmath>

#include "ops/attention_prologue.h"
#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kThreads = 256;  // as rms_norm_cuda.cu: the same partial sums per thread
constexpr int kMaxHalf = kRopeCudaMaxRotaryDim / 2;

struct Frequencies {
    float inv_freq[kMaxHalf];
};

__device__ __forceinline__ float weight_value(const float* w, int64_t i) { return w[i]; }
__device__ __forceinline__ float weight_value(const uint16_t* w, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(w[i]) << 16);
}

// The rms_norm scale of `row` (d elements), as rms_norm_kernel computes it.
__device__ float rms_scale(const float* row, int64_t d, float eps, double* partial) {
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < d; i += kThreads) sum += static_cast<double>(row[i]) * row[i];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    const float scale = static_cast<float>(1.0 / sqrt(partial[0] / d + eps));
    __syncthreads();  // partial is reused by the next call
    return scale;
}

__device__ void rotate(float* token, float position, const Frequencies& f, int n_heads,
                       int head_dim, int half) {
    for (int index = threadIdx.x; index < n_heads * half; index += kThreads) {
        const int h = index / half, i = index % half;
        const float angle = position * f.inv_freq[i];
        const float c = static_cast<float>(cos(static_cast<double>(angle)));
        const float s = static_cast<float>(sin(static_cast<double>(angle)));
        float* head = token + h * head_dim;
        const float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
    }
}

struct PrologueParams {
    float* q;
    float* k;
    const float* v;
    float eps;
    int q_width, kv_width, n_heads, n_kv_heads, head_dim, half;
    const int32_t* positions;
    const int32_t* table_offsets;
    const int32_t* tables;
    int64_t block_size;
    float* key_pool;
    float* value_pool;
};

template <typename W>
__global__ void __launch_bounds__(kThreads)
    prologue_kernel(PrologueParams p, const W* q_weight, const W* k_weight, Frequencies f) {
    __shared__ double partial[kThreads];
    float* q = p.q + static_cast<int64_t>(blockIdx.x) * p.q_width;
    float* k = p.k + static_cast<int64_t>(blockIdx.x) * p.kv_width;
    const float* v = p.v + static_cast<int64_t>(blockIdx.x) * p.kv_width;
    const float q_scale = rms_scale(q, p.q_width, p.eps, partial);
    const float k_scale = rms_scale(k, p.kv_width, p.eps, partial);
    for (int i = threadIdx.x; i < p.q_width; i += kThreads) q[i] = q[i] * q_scale * weight_value(q_weight, i);
    for (int i = threadIdx.x; i < p.kv_width; i += kThreads) k[i] = k[i] * k_scale * weight_value(k_weight, i);
    __syncthreads();
    const int32_t position = p.positions[blockIdx.x];
    rotate(q, static_cast<float>(position), f, p.n_heads, p.head_dim, p.half);
    rotate(k, static_cast<float>(position), f, p.n_kv_heads, p.head_dim, p.half);
    __syncthreads();
    const int32_t* table = p.tables + p.table_offsets[blockIdx.x];
    const int64_t row = static_cast<int64_t>(table[position / p.block_size]) * p.block_size +
                        position % p.block_size;
    for (int i = threadIdx.x; i < p.kv_width; i += kThreads) {
        p.key_pool[row * p.kv_width + i] = k[i];
        p.value_pool[row * p.kv_width + i] = v[i];
    }
}

}  // namespace

void attention_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                        const RopeShape& q_rope, const RopeShape& k_rope,
                        const PagedTokens& tokens, const KvLayer& pool) {
    const int64_t n_tokens = q.dim(0), half = q_rope.rotary_dim / 2;
    if (n_tokens == 0) return;
    Frequencies f{};
    for (int64_t i = 0; i < half; ++i) {  // as rope_cuda.cu makes them
        f.inv_freq[i] = static_cast<float>(
            1.0 / std::pow(q_rope.theta, static_cast<double>(2 * i) / q_rope.rotary_dim));
    }
    DeviceScope scope(q.device().index);
    Tensor key_pool = pool.keys, value_pool = pool.values;  // handles onto the shared pool
    const PrologueParams params{q.data<float>(),
                                k.data<float>(),
                                v.data<float>(),
                                norm.eps,
                                static_cast<int>(q.dim(1)),
                                static_cast<int>(k.dim(1)),
                                static_cast<int>(q_rope.n_heads),
                                static_cast<int>(k_rope.n_heads),
                                static_cast<int>(q_rope.head_dim),
                                static_cast<int>(half),
                                tokens.positions.data<int32_t>(),
                                tokens.table_offsets.data<int32_t>(),
                                tokens.block_tables.data<int32_t>(),
                                pool.block_size,
                                key_pool.data<float>(),
                                value_pool.data<float>()};
    const unsigned blocks = static_cast<unsigned>(n_tokens);
    if (norm.q_weight.dtype() == DType::bf16) {
        prologue_kernel<<<blocks, kThreads, 0, current_stream()>>>(
            params, norm.q_weight.data<uint16_t>(), norm.k_weight.data<uint16_t>(), f);
    } else {
        prologue_kernel<<<blocks, kThreads, 0, current_stream()>>>(
            params, norm.q_weight.data<float>(), norm.k_weight.data<float>(), f);
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
