// attention_prologue on CUDA: one CTA per token does the QK-norm of q and k, the RoPE of both
// and the cache write (f32 or bf16 pool) with the arithmetic rms_norm_cuda.cu and rope_cuda.cu
// use (ops/cuda/norm_rope.cuh): the same partition of the sums of squares, the same shuffle trees
// and expressions, so the result is bitwise that of those ops in sequence. Unlike them it touches
// global memory once per value: every load is issued at the start, the q and k norms share one
// reduction, and the normalised rows are rotated in shared memory before the single write.
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

// A token's elements per thread at most, which size the registers and shared memory that hold
// its rows (attention_prologue.cpp runs wider rows as the five ops).
constexpr int kMaxQPerThread = kPrologueMaxQWidth / kNormThreads;
constexpr int kMaxKvPerThread = kPrologueMaxKvWidth / kNormThreads;
constexpr int kMaxQWidth = kMaxQPerThread * kNormThreads;
constexpr int kMaxKvWidth = kMaxKvPerThread * kNormThreads;
static_assert(kMaxQWidth == kPrologueMaxQWidth && kMaxKvWidth == kPrologueMaxKvWidth);

template <typename T, typename W>
__global__ void __launch_bounds__(kNormThreads)
    prologue_kernel(PrologueParams<T> p, const W* q_weight, const W* k_weight, RopeFrequencies f) {
    __shared__ RmsPairShared reduction;
    __shared__ float cosines[kRopeMaxHalf], sines[kRopeMaxHalf];
    __shared__ float q_row[kMaxQWidth], k_row[kMaxKvWidth];
    float* q = p.q + static_cast<int64_t>(blockIdx.x) * p.q_width;
    float* k = p.k + static_cast<int64_t>(blockIdx.x) * p.kv_width;
    const float* v = p.v + static_cast<int64_t>(blockIdx.x) * p.kv_width;
    // The rows' loads all at once, so that the CTA waits for memory once rather than per step:
    // thread t holds elements t, t + kNormThreads, ... (rms_scale's partition).
    float qs[kMaxQPerThread], ks[kMaxKvPerThread], vs[kMaxKvPerThread];
    W q_weights[kMaxQPerThread], k_weights[kMaxKvPerThread];
    load_slots(q, p.q_width, qs);
    load_slots(k, p.kv_width, ks);
    load_slots(v, p.kv_width, vs);
    const int32_t position = p.positions[blockIdx.x];
    const int64_t row = paged_attention::pool_row(p.tables + p.table_offsets[blockIdx.x],
                                                  static_cast<int>(p.block_size), position);
    // The double-precision cos and sin (warp 0) while the loads are in flight. The weights load
    // after them, so as not to be live across the argument reduction of cos and sin (it would
    // spill at 64 registers); the other warps skip it, and warp 0's arrive before the scales.
    rope_angles(static_cast<float>(position), f, p.half, cosines, sines);
    load_slots(q_weight, p.q_width, q_weights);
    load_slots(k_weight, p.kv_width, k_weights);
    const double q_sums[1] = {sum_of_squares(qs, p.q_width)};
    const double k_sums[1] = {sum_of_squares(ks, p.kv_width)};
    const float2 scale =
        rms_scale_pair<kNormThreads>(q_sums, p.q_width, k_sums, p.kv_width, p.eps, reduction);
    // rms_norm_kernel's expression; the rows go to shared memory, where RoPE pairs elements that
    // other threads hold.
    store_normed(qs, scale.x, q_weights, p.q_width, q_row);
    store_normed(ks, scale.y, k_weights, p.kv_width, k_row);
    __syncthreads();
    rope_rotate(q_row, cosines, sines, p.n_heads, p.head_dim, p.half);
    rope_rotate(k_row, cosines, sines, p.n_kv_heads, p.head_dim, p.half);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kMaxQPerThread; ++j) {
        const int i = threadIdx.x + j * kNormThreads;
        if (i < p.q_width) q[i] = q_row[i];
    }
#pragma unroll
    for (int j = 0; j < kMaxKvPerThread; ++j) {
        const int i = threadIdx.x + j * kNormThreads;
        if (i < p.kv_width) {
            k[i] = k_row[i];
            paged_attention::store_kv(p.key_pool + row * p.kv_width + i, k_row[i]);
            paged_attention::store_kv(p.value_pool + row * p.kv_width + i, vs[j]);
        }
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
