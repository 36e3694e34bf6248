// Paged attention on CUDA, f32 as the contract says: kv_cache_write scatters new rows into the
// pool through the block tables; attention_paged runs one CTA per (query token, kv head) of the
// whole batch over the token's visible positions in tiles of 32, with an online softmax, so the
// kv head's keys and values are read once for its whole query group. Steps of many tokens also
// launch the tiled prefill kernel (attention_prefill_cuda.cuh), which takes the tokens of long
// runs (prefill chunks) and reads each key once per 16 tokens; this kernel then does the rest.
// Positions and tables are read on the device: nothing here waits for the host.
//
// CTA layout (256 threads, G = query heads per kv head <= 8, d = head_dim <= 128):
//   tile load   all threads: K and V rows of 32 positions into shared memory
//   scores      warp g < G, lane p: q_g . k_p, the tile's max and sum, P[g][p]
//   output      thread (r, i), r = tid / d: dimension i of heads r, r + 256/d, ...
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "ops/attention.h"
#include "ops/attention_prefill_cuda.cuh"
#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

using paged_attention::AttentionParams;

constexpr int kThreads = 256;
constexpr int kTile = 32;
constexpr int64_t kTargetCtas = 256;  // about two per SM of an H100/H200
// The tiled kernel holds one CTA per SM (~173 KB of shared memory): one wave of an H100/H200.
// More splits than that only add waves and the combine (a 512-token prompt: 128 CTAs took
// 199 us split in two, H100).
constexpr int64_t kPrefillTargetCtas = 132;

__device__ __forceinline__ int64_t pool_row(const int32_t* table, int64_t block_size,
                                            int64_t position) {
    return static_cast<int64_t>(table[position / block_size]) * block_size + position % block_size;
}

__global__ void kv_write_kernel(const float* keys, const float* values, const int32_t* positions,
                                const int32_t* table_offsets, const int32_t* tables,
                                int64_t block_size, int width, float* key_pool,
                                float* value_pool) {
    const int64_t row =
        pool_row(tables + table_offsets[blockIdx.x], block_size, positions[blockIdx.x]);
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        key_pool[row * width + i] = keys[static_cast<int64_t>(blockIdx.x) * width + i];
        value_pool[row * width + i] = values[static_cast<int64_t>(blockIdx.x) * width + i];
    }
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Shared memory: q [G][d], K tile [32][d + 1] (the +1 puts lane p's row on its own bank),
// V tile [32][d], P [G][32], rescale [G], final sums [G].
__global__ void __launch_bounds__(kThreads) attention_kernel(AttentionParams p) {
    extern __shared__ float shared[];
    const int d = p.head_dim, group = p.group;
    float* qs = shared;
    float* ks = qs + group * d;
    float* vs = ks + kTile * (d + 1);
    float* probs = vs + kTile * d;
    float* rescale = probs + group * kTile;
    float* sums = rescale + group;

    const int token = blockIdx.x, kv_head = blockIdx.y;
    if (p.skip_long_runs &&
        paged_attention::in_long_run(p.positions, p.table_offsets, p.n_tokens, token)) {
        return;  // the tiled kernel's token
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t begin = static_cast<int64_t>(blockIdx.z) * p.split;
    // Causal: positions 0 .. own, of which this split's.
    const int64_t visible = min(static_cast<int64_t>(p.positions[token]) + 1, begin + p.split);
    const int32_t* table = p.tables + p.table_offsets[token];
    const int heads_per_pass = kThreads / d;                 // output rows of threads
    const int my_dim = threadIdx.x % d, my_row = threadIdx.x / d;
    const bool outputs = threadIdx.x < heads_per_pass * d;  // a partial last row stays idle

    for (int index = threadIdx.x; index < group * d; index += kThreads) {
        const int g = index / d, i = index % d;
        qs[index] = p.q[static_cast<int64_t>(token) * p.q_width + (kv_head * group + g) * d + i];
    }
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = 0.0f;
    float running_max = -INFINITY, running_sum = 0.0f;  // warp g's head, replicated in lanes
    if (begin >= visible) {  // a split past this token's own position: nothing to attend
        for (int index = threadIdx.x; index < group * (d + 2); index += kThreads) {
            const int g = index / (d + 2), i = index % (d + 2);
            const int64_t head = static_cast<int64_t>(token) * (p.q_width / d) + kv_head * group + g;
            p.partial[(head * p.n_splits + blockIdx.z) * (d + 2) + i] = i == d ? -INFINITY : 0.0f;
        }
        return;
    }

    for (int64_t tile0 = begin; tile0 < visible; tile0 += kTile) {
        __syncthreads();  // the previous tile's readers are done (and q is loaded)
        for (int index = threadIdx.x; index < kTile * d; index += kThreads) {
            const int r = index / d, i = index % d;
            const int64_t position = tile0 + r;
            float k = 0.0f, v = 0.0f;
            if (position < visible) {
                const int64_t row = pool_row(table, p.block_size, position);
                k = p.keys[row * p.kv_width + kv_head * d + i];
                v = p.values[row * p.kv_width + kv_head * d + i];
            }
            ks[r * (d + 1) + i] = k;
            vs[r * d + i] = v;
        }
        __syncthreads();
        if (warp < group) {
            const int64_t position = tile0 + lane;
            float score = -INFINITY;
            if (position < visible) {
                float dot = 0.0f;
                for (int i = 0; i < d; ++i) dot += qs[warp * d + i] * ks[lane * (d + 1) + i];
                score = dot * p.scale;
            }
            // Finite: the split's first position is visible.
            const float new_max = fmaxf(running_max, warp_max(score));
            const float weight = position < visible ? expf(score - new_max) : 0.0f;
            const float factor = expf(running_max - new_max);            // 0 on the first tile
            running_sum = running_sum * factor + warp_sum(weight);
            running_max = new_max;
            probs[warp * kTile + lane] = weight;
            if (lane == 0) rescale[warp] = factor;
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int g = my_row + j * heads_per_pass;
            if (outputs && g < group) {
                float value = acc[j] * rescale[g];
                for (int r = 0; r < kTile; ++r) value += probs[g * kTile + r] * vs[r * d + my_dim];
                acc[j] = value;
            }
        }
    }
    if (warp < group && lane == 0) {
        sums[warp] = running_sum;
        if (p.n_splits > 1) {
            const int64_t head = static_cast<int64_t>(token) * (p.q_width / d) + kv_head * group + warp;
            float* state = p.partial + (head * p.n_splits + blockIdx.z) * (d + 2);
            state[d] = running_max;
            state[d + 1] = running_sum;
        }
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int g = my_row + j * heads_per_pass;
        if (outputs && g < group) {
            if (p.n_splits > 1) {
                const int64_t head = static_cast<int64_t>(token) * (p.q_width / d) + kv_head * group + g;
                p.partial[(head * p.n_splits + blockIdx.z) * (d + 2) + my_dim] = acc[j];
            } else {
                p.out[static_cast<int64_t>(token) * p.q_width + (kv_head * group + g) * d + my_dim] =
                    acc[j] / sums[g];
            }
        }
    }
}

// One CTA per (token, head), d threads: the splits' outputs rescaled to the largest maximum.
__global__ void combine_kernel(const float* partial, int n_splits, int head_dim, float* out) {
    const int64_t head = static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y;
    const float* states = partial + head * n_splits * (head_dim + 2);
    float largest = -INFINITY;
    for (int s = 0; s < n_splits; ++s) largest = fmaxf(largest, states[s * (head_dim + 2) + head_dim]);
    float total = 0.0f, value = 0.0f;
    for (int s = 0; s < n_splits; ++s) {
        const float* state = states + s * (head_dim + 2);
        const float weight = state[head_dim] == -INFINITY ? 0.0f : expf(state[head_dim] - largest);
        total += weight * state[head_dim + 1];
        value += weight * state[threadIdx.x];
    }
    out[head * head_dim + threadIdx.x] = value / total;
}

// Whether the tiled kernel can take this step: many tokens, a group and head_dim it holds, and
// 16-byte aligned rows for its vector loads (views into larger buffers might not be).
bool takes_prefill_kernel(const Tensor& q, const KvLayer& pool, const AttentionShape& shape) {
    const auto aligned = [](const Tensor& t) {
        return reinterpret_cast<uintptr_t>(t.data<float>()) % 16 == 0;
    };
    const int64_t group = shape.n_heads / shape.n_kv_heads;
    return q.dim(0) > paged_attention::kPrefillMinTokens && group <= paged_attention::kPrefillHeads &&
           shape.head_dim <= paged_attention::kPrefillDim && shape.head_dim % 4 == 0 && aligned(q) &&
           aligned(pool.keys) && aligned(pool.values);
}

}  // namespace

void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool) {
    const int64_t n = keys.dim(0), width = keys.dim(1);
    if (n == 0) return;
    DeviceScope scope(keys.device().index);
    Tensor key_pool = pool.keys, value_pool = pool.values;  // handles onto the shared pool
    kv_write_kernel<<<static_cast<unsigned>(n), 128, 0, current_stream()>>>(
        keys.data<float>(), values.data<float>(), tokens.positions.data<int32_t>(),
        tokens.table_offsets.data<int32_t>(), tokens.block_tables.data<int32_t>(),
        pool.block_size, static_cast<int>(width), key_pool.data<float>(),
        value_pool.data<float>());
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out) {
    const int64_t n_tokens = q.dim(0);
    if (n_tokens == 0) return;
    DeviceScope scope(q.device().index);
    const bool prefill = takes_prefill_kernel(q, pool, shape);
    AttentionParams params{q.data<float>(),
                           pool.keys.data<float>(),
                           pool.values.data<float>(),
                           tokens.positions.data<int32_t>(),
                           tokens.table_offsets.data<int32_t>(),
                           tokens.block_tables.data<int32_t>(),
                           out.data<float>(),
                           pool.block_size,
                           static_cast<int>(shape.n_heads / shape.n_kv_heads),
                           static_cast<int>(shape.head_dim),
                           static_cast<int>(shape.n_heads * shape.head_dim),
                           static_cast<int>(shape.n_kv_heads * shape.head_dim),
                           1.0f / std::sqrt(static_cast<float>(shape.head_dim)),
                           0,
                           1,
                           nullptr,
                           static_cast<int>(n_tokens),
                           prefill};
    const int d = params.head_dim, group = params.group;
    const size_t shared_bytes =
        sizeof(float) * (group * d + kTile * (d + 1) + kTile * d + group * kTile + 2 * group);
    // Enough CTAs to fill the card: split the context when the CTAs of the step's main kernel
    // are few (decode; a short chunk late in a long context). Splits are whole tiles of both
    // kernels (64 is a multiple of 32), and both kernels use the same ones.
    const int64_t tile = prefill ? paged_attention::kPrefillPositions : kTile;
    constexpr int64_t kTileTokens = paged_attention::kPrefillTokens;
    const int64_t token_tiles = (n_tokens + kTileTokens - 1) / kTileTokens;
    const int64_t ctas = (prefill ? token_tiles : n_tokens) * shape.n_kv_heads;
    const int64_t target = prefill ? kPrefillTargetCtas : kTargetCtas;
    const int64_t context = std::max<int64_t>(tokens.max_context, 1);
    int64_t splits = ctas >= target ? 1 : std::min<int64_t>(target / ctas, (context + tile - 1) / tile);
    splits = std::max<int64_t>(splits, 1);
    params.split = static_cast<int>(((context + splits - 1) / splits + tile - 1) / tile * tile);
    params.n_splits = static_cast<int>((context + params.split - 1) / params.split);
    if (params.n_splits == 1) params.split = 1 << 30;  // one CTA sees the whole context
    std::optional<Scratch> partial;
    if (params.n_splits > 1) {
        partial.emplace(static_cast<size_t>(n_tokens * shape.n_heads * params.n_splits * (d + 2)) *
                        sizeof(float));
        params.partial = partial->as<float>();
    }
    if (prefill) {
        FOURBIT_CUDA_CHECK((paged_attention::launch_prefill_attention(
            params, static_cast<int>(shape.n_kv_heads), current_stream())));
    }
    // Every token's CTAs; with the tiled kernel, those of long runs return at once.
    const dim3 grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(shape.n_kv_heads),
                    static_cast<unsigned>(params.n_splits));
    attention_kernel<<<grid, kThreads, shared_bytes, current_stream()>>>(params);
    FOURBIT_CUDA_CHECK_LAUNCH();
    if (params.n_splits > 1) {
        const dim3 heads(static_cast<unsigned>(n_tokens), static_cast<unsigned>(shape.n_heads));
        combine_kernel<<<heads, static_cast<unsigned>(d), 0, current_stream()>>>(
            params.partial, params.n_splits, d, out.data<float>());
        FOURBIT_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace fourbit::cuda
