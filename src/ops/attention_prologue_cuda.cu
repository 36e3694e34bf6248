// attention_prologue on CUDA: one CTA per token does the QK-norm of q and k, the RoPE of both
// and the cache write (f32 or bf16 pool), with the very functions rms_norm_cuda.cu and rope_cuda.cu
// use (ops/cuda/norm_rope.cuh), so the result is bitwise that of those ops in sequence.
#include <type_traits>

#include "ops/attention_prefill_cuda.cuh"
#include "ops/attention_prologue.h"
#include "ops/cuda/norm_rope.cuh"
#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

template <typename T>  // the pool's element, float or __nv_bfloat16
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
    T* key_pool;
    T* value_pool;
};

template <typename T, typename W>
__global__ void __launch_bounds__(kNormThreads)
    prologue_kernel(PrologueParams<T> p, const W* q_weight, const W* k_weight, RopeFrequencies f) {
    __shared__ double partial[kNormWarps];
    __shared__ float cosines[kRopeMaxHalf], sines[kRopeMaxHalf];
    float* q = p.q + static_cast<int64_t>(blockIdx.x) * p.q_width;
    float* k = p.k + static_cast<int64_t>(blockIdx.x) * p.kv_width;
    const float* v = p.v + static_cast<int64_t>(blockIdx.x) * p.kv_width;
    const int32_t position = p.positions[blockIdx.x];
    rope_angles(static_cast<float>(position), f, p.half, cosines, sines);  // rms_scale syncs
    const float q_scale = rms_scale(q, p.q_width, p.eps, partial);
    const float k_scale = rms_scale(k, p.kv_width, p.eps, partial);
    for (int i = threadIdx.x; i < p.q_width; i += kNormThreads) q[i] = q[i] * q_scale * norm_weight(q_weight, i);
    for (int i = threadIdx.x; i < p.kv_width; i += kNormThreads) k[i] = k[i] * k_scale * norm_weight(k_weight, i);
    __syncthreads();
    rope_rotate(q, cosines, sines, p.n_heads, p.head_dim, p.half);
    rope_rotate(k, cosines, sines, p.n_kv_heads, p.head_dim, p.half);
    __syncthreads();
    const int64_t row = paged_attention::pool_row(p.tables + p.table_offsets[blockIdx.x],
                                                  static_cast<int>(p.block_size), position);
    for (int i = threadIdx.x; i < p.kv_width; i += kNormThreads) {
        paged_attention::store_kv(p.key_pool + row * p.kv_width + i, k[i]);
        paged_attention::store_kv(p.value_pool + row * p.kv_width + i, v[i]);
    }
}

}  // namespace

void attention_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                        const RopeShape& q_rope, const RopeShape& k_rope,
                        const PagedTokens& tokens, const KvLayer& pool) {
    const int64_t n_tokens = q.dim(0), half = q_rope.rotary_dim / 2;
    if (n_tokens == 0) return;
    const RopeFrequencies f = rope_frequencies(q_rope.theta, q_rope.rotary_dim);
    DeviceScope scope(q.device().index);
    Tensor key_pool = pool.keys, value_pool = pool.values;  // handles onto the shared pool
    auto launch = [&](auto* key_rows, auto* value_rows) {
        using T = std::remove_pointer_t<decltype(key_rows)>;
        const PrologueParams<T> params{q.data<float>(),
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
                                       key_rows,
                                       value_rows};
        const unsigned blocks = static_cast<unsigned>(n_tokens);
        if (norm.q_weight.dtype() == DType::bf16) {
            prologue_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
                params, norm.q_weight.data<uint16_t>(), norm.k_weight.data<uint16_t>(), f);
        } else {
            prologue_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
                params, norm.q_weight.data<float>(), norm.k_weight.data<float>(), f);
        }
    };
    if (pool.keys.dtype() == DType::bf16) {
        launch(key_pool.data<__nv_bfloat16>(), value_pool.data<__nv_bfloat16>());
    } else {
        launch(key_pool.data<float>(), value_pool.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
