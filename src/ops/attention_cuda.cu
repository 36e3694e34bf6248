// Paged attention on CUDA, f32 arithmetic on an f32 or bf16 pool as the contract says:
// kv_cache_write scatters new rows into the pool through the block tables; attention_paged runs one
// CTA per (query token, kv head) of the whole batch over the token's visible positions in tiles of
// 32, with an online softmax, so the kv head's keys and values are read once for its whole query
// group. Steps of many tokens also launch the tiled prefill kernel (attention_prefill_cuda.cu),
// which takes the tokens of long runs (prefill chunks) and reads each key once per 16 tokens (32
// on Hopper over a bf16 pool: attention_prefill_wgmma_cuda.cu); this kernel then does the rest.
// Over a bf16 pool (head_dim a multiple of 8) that per-token work runs on the tensor cores
// instead (attention_decode_cuda.cu), which on a decode step may also take the prologue
// (attention_with_prologue). Positions and tables are read on the device:
// nothing here waits for the host.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>

#include "ops/attention.h"
#include "ops/attention_prefill_cuda.cuh"
#include "ops/attention_prologue.h"
#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/stream.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

using paged_attention::AttentionParams;

constexpr int kThreads = 256;
constexpr int kTile = 32;
constexpr int64_t kTargetCtas = 256;  // about two per SM of an H100/H200
// The tensor-core decode kernel's shortest splits (PagedLaunch says why): two steps from a
// context of kTwoStepContext, and a kSplitCap-th of the context up to kCappedPositions.
constexpr int64_t kTwoStepContext = 1024;
constexpr int64_t kSplitCap = 16;
constexpr int64_t kCappedPositions = 512;
// One wave of the tiled kernel over an f32 pool (one CTA an SM); over a bf16 pool (two an SM)
// 264 measured the same as 132 (H200). More splits than that only add waves and the combine (a
// 512-token prompt: 128 CTAs took 199 us split in two, H100).
constexpr int64_t kPrefillTargetCtas = 132;

template <typename T>
__global__ void kv_write_kernel(const float* keys, const float* values, const int32_t* positions,
                                const int32_t* table_offsets, const int32_t* tables, int block_size,
                                int width, T* key_pool, T* value_pool) {
    const int64_t row = paged_attention::pool_row(tables + table_offsets[blockIdx.x], block_size,
                                                  positions[blockIdx.x]);
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const int64_t from = static_cast<int64_t>(blockIdx.x) * width + i;
        paged_attention::store_kv(key_pool + row * width + i, keys[from]);
        paged_attention::store_kv(value_pool + row * width + i, values[from]);
    }
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// The per-token kernel streams its keys and values through shared memory in tiles of 32
// positions, kStages deep (cp.async), so that a CTA keeps two tiles of loads in flight while it
// multiplies the third: decode is a read of the context's keys and values, and one tile at a time
// left it waiting on memory (610 GB/s for a 4K context on an H100). Three stages of an f32 pool
// take ~105 KB, more than cards of 99 KB a CTA (sm_120, the GB10) allow: two there (~71 KB).
constexpr int kMaxDim = 128;
constexpr int kMaxGroup = 8;

// T: the pool's element, float or __nv_bfloat16.
template <typename T, int kStages>
struct DecodeShared {
    // Pool elements per 16-byte vector. Lane p reads row p as such vectors: one vector more per
    // row puts the 8 rows of a quarter-warp on distinct banks.
    static constexpr int kVector = 16 / sizeof(T);
    static constexpr int kKeyStride = kMaxDim + kVector;
    float q[kMaxGroup][kMaxDim];
    T keys[kStages][kTile][kKeyStride];
    T values[kStages][kTile][kMaxDim];
    float probs[kMaxGroup][kTile];
    float rescale[kMaxGroup];
    float sums[kMaxGroup];
};

// Positions [tile0, tile0 + 32) of the token's walk into stage `stage`; one commit group per call
// (empty past the walk's last tile, so that every iteration waits on the same count). `vector`:
// rows in 16-byte pieces (head_dim and the pool's rows whole vectors, aligned pools), else
// element by element (cp.async of 4-byte floats; a bf16 is read and stored by the thread).
template <typename T, int kStages>
__device__ __forceinline__ void load_tile(const AttentionParams& p, const int32_t* table,
                                          int kv_head, int tile0, int visible, int stage,
                                          bool vector, DecodeShared<T, kStages>& s) {
    const int d = p.head_dim, width = vector ? DecodeShared<T, kStages>::kVector : 1;
    const int pieces = d / width;
    const int block_size = static_cast<int>(p.block_size);
    const T* keys = static_cast<const T*>(p.keys);
    const T* values = static_cast<const T*>(p.values);
    if (tile0 < visible) {
        for (int index = threadIdx.x; index < kTile * pieces; index += kThreads) {
            const int r = index / pieces, c = width * (index % pieces);
            const int position = tile0 + r;
            const bool valid = position < visible;
            int64_t offset = 0;
            if (valid) {
                offset = paged_attention::pool_row(table, block_size, position) * p.kv_width +
                         kv_head * d + c;
            }
            if (vector) {
                copy_async_16(&s.keys[stage][r][c], keys + offset, valid);
                copy_async_16(&s.values[stage][r][c], values + offset, valid);
            } else if constexpr (sizeof(T) == 4) {
                copy_async_4(&s.keys[stage][r][c], keys + offset, valid);
                copy_async_4(&s.values[stage][r][c], values + offset, valid);
            } else {
                s.keys[stage][r][c] = valid ? keys[offset] : T{};
                s.values[stage][r][c] = valid ? values[offset] : T{};
            }
        }
    }
    commit_async_copies();
}

// Four floats of a staged row from its 16-byte vector (f32) or half of one (bf16).
__device__ __forceinline__ float4 load_four(const float* row, int i) {
    return *reinterpret_cast<const float4*>(row + i);
}
__device__ __forceinline__ float4 load_four(const __nv_bfloat16* row, int i) {
    const uint2 bits = *reinterpret_cast<const uint2*>(row + i);
    const float2 low = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits.x));
    const float2 high = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&bits.y));
    return make_float4(low.x, low.y, high.x, high.y);
}

// q_g . k_p for lane p of warp g, in four independent sums (a chain of 128 dependent FMAs would
// cost more than the tile's loads).
template <typename T>
__device__ __forceinline__ float dot_query_key(const float* q, const T* key, int d, bool vector) {
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (vector) {
#pragma unroll 8
        for (int i = 0; i < d; i += 4) {
            const float4 k = load_four(key, i);
            const float4 x = *reinterpret_cast<const float4*>(q + i);
            sum[0] = fmaf(x.x, k.x, sum[0]);
            sum[1] = fmaf(x.y, k.y, sum[1]);
            sum[2] = fmaf(x.z, k.z, sum[2]);
            sum[3] = fmaf(x.w, k.w, sum[3]);
        }
    } else {
        for (int i = 0; i < d; ++i)
            sum[i & 3] = fmaf(q[i], paged_attention::load_kv(key[i]), sum[i & 3]);
    }
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

// CTA layout (256 threads, G = query heads per kv head <= 8, d = head_dim <= 128):
//   tile load   all threads: K and V rows of 32 positions, kStages - 1 tiles ahead
//   scores    warp g < G, lane p: q_g . k_p, the tile's max and sum, P[g][p]
//   output    thread (r, i), r = tid / d: dimension i of heads r, r + 256/d, ...
template <typename T, int kStages>
__global__ void __launch_bounds__(kThreads, 2) attention_kernel(AttentionParams p) {
    allow_dependents();  // the o projection (PDL) streams its weights meanwhile
    extern __shared__ float4 shared_words[];
    DecodeShared<T, kStages>& s = *reinterpret_cast<DecodeShared<T, kStages>*>(shared_words);
    const int d = p.head_dim, group = p.group;
    const int token = blockIdx.x, kv_head = blockIdx.y;
    if (p.skip_long_runs &&
        paged_attention::in_long_run_warp(p.positions, p.table_offsets, p.n_tokens, token)) {
        return;  // the tiled kernel's token
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int begin = static_cast<int>(blockIdx.z) * p.split;
    // Causal: positions 0 .. own, of which this split's.
    const int visible = min(p.positions[token] + 1, begin + p.split);
    const int32_t* table = p.tables + p.table_offsets[token];
    const int heads_per_pass = kThreads / d;  // output rows of threads
    const int my_dim = threadIdx.x % d, my_row = threadIdx.x / d;
    const bool outputs = threadIdx.x < heads_per_pass * d;  // a partial last row stays idle
    constexpr int kVector = DecodeShared<T, kStages>::kVector;
    const bool vector = d % kVector == 0 && p.kv_width % kVector == 0 &&
                        reinterpret_cast<uintptr_t>(p.keys) % 16 == 0 &&
                        reinterpret_cast<uintptr_t>(p.values) % 16 == 0;

    if (begin >= visible) {  // a split past this token's own position: nothing to attend
        paged_attention::write_empty_split<kThreads>(p, token, kv_head);
        return;
    }
    const int n_tiles = (visible - begin + kTile - 1) / kTile;
    for (int stage = 0; stage < kStages - 1; ++stage) {
        load_tile(p, table, kv_head, begin + stage * kTile, visible, stage, vector, s);
    }
    for (int index = threadIdx.x; index < group * d; index += kThreads) {
        const int g = index / d, i = index % d;
        s.q[g][i] = p.q[static_cast<int64_t>(token) * p.q_width + (kv_head * group + g) * d + i];
    }
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = 0.0f;
    float running_max = -INFINITY, running_sum = 0.0f;  // warp g's head, replicated in lanes

    for (int i = 0; i < n_tiles; ++i) {
        const int stage = i % kStages, tile0 = begin + i * kTile;
        wait_async_copies<kStages - 2>();  // tile i is here
        __syncthreads();  // for everyone; and everyone is done with tile i - 1, whose stage refills
        load_tile(p, table, kv_head, tile0 + (kStages - 1) * kTile, visible,
                  (i + kStages - 1) % kStages, vector, s);
        if (warp < group) {
            const int position = tile0 + lane;
            float score = -INFINITY;
            if (position < visible)
                score = dot_query_key(s.q[warp], s.keys[stage][lane], d, vector) * p.scale;
            // Finite: the split's first position is visible.
            const float new_max = fmaxf(running_max, warp_max(score));
            const float weight = position < visible ? expf(score - new_max) : 0.0f;
            const float factor = expf(running_max - new_max);  // 0 on the first tile
            running_sum = running_sum * factor + warp_sum(weight);
            running_max = new_max;
            s.probs[warp][lane] = weight;
            if (lane == 0) s.rescale[warp] = factor;
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int g = my_row + j * heads_per_pass;
            if (outputs && g < group) {
                float value = acc[j] * s.rescale[g];
#pragma unroll 8
                for (int r = 0; r < kTile; ++r) {
                    value = fmaf(s.probs[g][r],
                                 paged_attention::load_kv(s.values[stage][r][my_dim]), value);
                }
                acc[j] = value;
            }
        }
    }
    if (warp < group && lane == 0) {
        s.sums[warp] = running_sum;
        if (p.n_splits > 1) {
            const int64_t head = paged_attention::query_head(p, token, kv_head, warp);
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
                const int64_t head = paged_attention::query_head(p, token, kv_head, g);
                p.partial[(head * p.n_splits + blockIdx.z) * (d + 2) + my_dim] = acc[j];
            } else {
                store_output(
                    p, static_cast<int64_t>(token) * p.q_width + (kv_head * group + g) * d + my_dim,
                    acc[j] / s.sums[g]);
            }
        }
    }
}

// Splits whose outputs a combine thread loads before it reduces anything.
constexpr int kCombinePrefetch = 32;

// One CTA per (token, head), d threads: the splits' outputs rescaled to the largest maximum.
// Every load is issued at the start, the splits' maxima and sums by one thread each and the
// first kCombinePrefetch outputs of a thread's dimension into registers, so that the combine
// waits for memory about once: a thread walking the splits in turn took ~0.09 us a split (H200:
// 2.1 us at 8 splits, 4.9 at 32). The sums are the same, in split order. Dynamic shared memory:
// 3 n_splits floats. The output as the step's parameters say (store_output).
__global__ void combine_kernel(AttentionParams p) {
    const float* partial = p.partial;
    const int n_splits = p.n_splits, head_dim = p.head_dim;
    allow_dependents();
    extern __shared__ float split_states[];
    float* maxima = split_states;
    float* sums = maxima + n_splits;
    float* weights = sums + n_splits;
    const int64_t head = static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y;
    const int stride = head_dim + 2;
    const float* states = partial + head * n_splits * stride;
    const int i = threadIdx.x;
    float prefetched[kCombinePrefetch];
#pragma unroll
    for (int s = 0; s < kCombinePrefetch; ++s) {
        if (s < n_splits) prefetched[s] = states[s * stride + i];
    }
    for (int s = i; s < n_splits; s += blockDim.x) {
        maxima[s] = states[s * stride + head_dim];
        sums[s] = states[s * stride + head_dim + 1];
    }
    __syncthreads();
    float largest = -INFINITY;
    for (int s = 0; s < n_splits; ++s) largest = fmaxf(largest, maxima[s]);
    for (int s = i; s < n_splits; s += blockDim.x) {
        weights[s] = maxima[s] == -INFINITY ? 0.0f : expf(maxima[s] - largest);
    }
    __syncthreads();
    float total = 0.0f, value = 0.0f;
#pragma unroll
    for (int s = 0; s < kCombinePrefetch; ++s) {
        if (s < n_splits) {
            total += weights[s] * sums[s];
            value += weights[s] * prefetched[s];
        }
    }
    for (int s = kCombinePrefetch; s < n_splits; ++s) {
        total += weights[s] * sums[s];
        value += weights[s] * states[s * stride + i];
    }
    store_output(p, head * head_dim + i, value / total);
}

// Whether a tensor's data starts on 16 bytes, as vector loads need (views into larger buffers
// might not).
bool aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

// Whether the tiled kernel can take this step: many tokens, a group and head_dim it holds, and
// aligned rows for its vector loads: head_dim whole vectors of q (4 floats) and of the pool (4
// floats, 8 bf16).
bool takes_prefill_kernel(const Tensor& q, const KvLayer& pool, const AttentionShape& shape) {
    const int64_t group = shape.n_heads / shape.n_kv_heads;
    const int64_t vector = pool.keys.dtype() == DType::bf16 ? 8 : 4;
    return q.dim(0) > paged_attention::kPrefillMinTokens &&
           paged_attention::prefill_fits(pool.keys.dtype() == DType::bf16) &&
           group <= paged_attention::kPrefillHeads &&
           shape.head_dim <= paged_attention::kPrefillDim && shape.head_dim % vector == 0 &&
           aligned(q) && aligned(pool.keys) && aligned(pool.values);
}

// Whether the tensor-core decode kernel takes the per-token kernel's tokens: a bf16 pool whose
// rows are whole 16-byte vectors, at 16-byte aligned addresses.
bool takes_decode_kernel(const KvLayer& pool, const AttentionShape& shape) {
    return pool.keys.dtype() == DType::bf16 && shape.head_dim % 8 == 0 &&
           shape.head_dim <= paged_attention::kPrefillDim && aligned(pool.keys) &&
           aligned(pool.values);
}

// Launches the per-token kernel on pool elements T, kStages deep.
template <typename T, int kStages>
void launch_attention_staged(const AttentionParams& params, dim3 grid) {
    constexpr size_t kSharedBytes = sizeof(DecodeShared<T, kStages>);
    FOURBIT_CUDA_CHECK(opt_in_shared_memory(attention_kernel<T, kStages>, kSharedBytes));
    attention_kernel<T, kStages><<<grid, kThreads, kSharedBytes, current_stream()>>>(params);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

// Three stages where they fit a CTA's shared memory (shared_memory_per_cta), else two.
template <typename T>
void launch_attention(const AttentionParams& params, dim3 grid) {
    static_assert(sizeof(DecodeShared<float, 2>) <= 99 * 1024, "two stages fit sm_120's CTAs");
    if (sizeof(DecodeShared<T, 3>) <= shared_memory_per_cta()) {
        launch_attention_staged<T, 3>(params, grid);
    } else {
        launch_attention_staged<T, 2>(params, grid);
    }
}

}  // namespace

void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool) {
    const int64_t n = keys.dim(0), width = keys.dim(1);
    if (n == 0) return;
    DeviceScope scope(keys.device().index);
    Tensor key_pool = pool.keys, value_pool = pool.values;  // handles onto the shared pool
    auto launch = [&](auto* key_rows, auto* value_rows) {
        kv_write_kernel<<<static_cast<unsigned>(n), 128, 0, current_stream()>>>(
            keys.data<float>(), values.data<float>(), tokens.positions.data<int32_t>(),
            tokens.table_offsets.data<int32_t>(), tokens.block_tables.data<int32_t>(),
            static_cast<int>(pool.block_size), static_cast<int>(width), key_rows, value_rows);
    };
    if (pool.keys.dtype() == DType::bf16) {
        launch(key_pool.data<__nv_bfloat16>(), value_pool.data<__nv_bfloat16>());
    } else {
        launch(key_pool.data<float>(), value_pool.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

namespace {

// A step's attention as launched: the kernels' parameters, with the context split across CTAs
// when a step's CTAs are few, and the splits' states for the combine. That of attention_paged,
// or of the decode kernel with the folded prologue (decode_mma and no tiled kernel).
struct PagedLaunch {
    PagedLaunch(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                const AttentionShape& shape, Tensor& out, bool prefill, bool decode_mma);
    AttentionParams params;
    dim3 grid;  // the per-token kernels' (tokens, kv heads, splits)
    std::optional<Scratch> partial;
};

PagedLaunch::PagedLaunch(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                         const AttentionShape& shape, Tensor& out, bool prefill, bool decode_mma)
    : params{q.data<float>(),
             pool.keys.raw(),
             pool.values.raw(),
             tokens.positions.data<int32_t>(),
             tokens.table_offsets.data<int32_t>(),
             tokens.block_tables.data<int32_t>(),
             out.data<void>(),
             pool.block_size,
             static_cast<int>(shape.n_heads / shape.n_kv_heads),
             static_cast<int>(shape.head_dim),
             static_cast<int>(shape.n_heads * shape.head_dim),
             static_cast<int>(shape.n_kv_heads * shape.head_dim),
             1.0f / std::sqrt(static_cast<float>(shape.head_dim)),
             0,
             1,
             nullptr,
             static_cast<int>(q.dim(0)),
             prefill,
             out.dtype() == DType::bf16} {
    const int64_t n_tokens = q.dim(0);
    const int d = params.head_dim;
    // Enough CTAs to fill the card: split the context when the CTAs of the step's main kernel
    // are few (decode; a short chunk late in a long context). Splits are whole tiles of both
    // kernels (64 is a multiple of 32), and both kernels use the same ones.
    const int64_t tile = decode_mma ? paged_attention::kDecodeStep
                         : prefill  ? paged_attention::kPrefillPositions
                                    : kTile;
    const int64_t tile_tokens =
        prefill ? paged_attention::prefill_tile_tokens(pool.keys.dtype() == DType::bf16) : 1;
    const int64_t ctas = (n_tokens + tile_tokens - 1) / tile_tokens * shape.n_kv_heads;
    const int64_t target = prefill ? kPrefillTargetCtas : kTargetCtas;
    const int64_t context = std::max<int64_t>(tokens.max_context, 1);
    // The tensor-core decode kernel's splits are at least two of its steps long from a context
    // of kTwoStepContext, and at least 1/kSplitCap of the context up to kCappedPositions each:
    // graphed steps round their context up to a power of two (576 positions run as 1,024), and
    // the CTA target (256) had cut such contexts into up to 32 one-step splits, the combine
    // growing ~0.09 us a split. H200 decode graph, attention + combine a layer at batch 1, A/B
    // in one call: 11.6 -> 11.2 us at 1,024, 15.8 -> 13.4 at 2,048, 18.5 -> 15.9 at 4,096, 22.5
    // -> 20.9 at 8,192; at 256 and 512 one-step splits stayed faster (10.3 against 11.4, 10.6
    // against 11.0), and at 16K and 32K 16 splits lost (29.4 -> 30.9, 47.2 -> 51.2 us).
    const int64_t min_split =
        decode_mma && context >= kTwoStepContext
            ? std::max(2 * tile, std::min((context + kSplitCap - 1) / kSplitCap, kCappedPositions))
            : tile;
    int64_t splits = ctas >= target
                         ? 1
                         : std::min<int64_t>(target / ctas, (context + min_split - 1) / min_split);
    splits = std::max<int64_t>(splits, 1);
    params.split = static_cast<int>(((context + splits - 1) / splits + tile - 1) / tile * tile);
    params.n_splits = static_cast<int>((context + params.split - 1) / params.split);
    if (params.n_splits == 1) params.split = 1 << 30;  // one CTA sees the whole context
    if (params.n_splits > 1) {
        partial.emplace(static_cast<size_t>(n_tokens * shape.n_heads * params.n_splits * (d + 2)) *
                        sizeof(float));
        params.partial = partial->as<float>();
    }
    // Every token's CTAs; with the tiled kernel, those of long runs return at once.
    grid = dim3(static_cast<unsigned>(n_tokens), static_cast<unsigned>(shape.n_kv_heads),
                static_cast<unsigned>(params.n_splits));
}

// The splits' states into out, when the context was split.
void combine_splits(const PagedLaunch& launch, const AttentionShape& shape) {
    const AttentionParams& params = launch.params;
    if (params.n_splits == 1) return;
    const dim3 heads(static_cast<unsigned>(params.n_tokens), static_cast<unsigned>(shape.n_heads));
    const size_t bytes = 3 * static_cast<size_t>(params.n_splits) * sizeof(float);
    combine_kernel<<<heads, static_cast<unsigned>(params.head_dim), bytes, current_stream()>>>(
        params);
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out) {
    if (q.dim(0) == 0) return;
    DeviceScope scope(q.device().index);
    const bool prefill = takes_prefill_kernel(q, pool, shape);
    const bool decode_mma = takes_decode_kernel(pool, shape);
    const PagedLaunch launch(q, tokens, pool, shape, out, prefill, decode_mma);
    if (prefill) {
        FOURBIT_CUDA_CHECK((paged_attention::launch_prefill_attention(
            launch.params, static_cast<int>(shape.n_kv_heads), pool.keys.dtype() == DType::bf16,
            current_stream())));
    }
    if (decode_mma) {
        FOURBIT_CUDA_CHECK(paged_attention::launch_decode_attention(launch.params, nullptr,
                                                                    launch.grid, current_stream()));
    } else if (pool.keys.dtype() == DType::bf16) {
        launch_attention<__nv_bfloat16>(launch.params, launch.grid);
    } else {
        launch_attention<float>(launch.params, launch.grid);
    }
    combine_splits(launch, shape);
}

bool folds_prologue(const RopeShape& q_rope, const KvLayer& pool, const AttentionShape& shape) {
    return takes_decode_kernel(pool, shape) && q_rope.n_heads == shape.n_heads &&
           q_rope.head_dim == shape.head_dim && q_rope.rotary_dim <= shape.head_dim &&
           q_rope.rotary_dim % 2 == 0;
}

void attention_with_prologue(const Tensor& q, const Tensor& k, const Tensor& v, const QkNorm& norm,
                             const RopeShape& q_rope, const PagedTokens& tokens,
                             const KvLayer& pool, const AttentionShape& shape, Tensor& out) {
    if (q.dim(0) == 0) return;
    DeviceScope scope(q.device().index);
    const PagedLaunch launch(q, tokens, pool, shape, out, false, true);
    Tensor key_pool = pool.keys, value_pool = pool.values;  // handles onto the shared pool
    const paged_attention::DecodePrologue prologue{
        k.data<float>(),
        v.data<float>(),
        key_pool.data<__nv_bfloat16>(),
        value_pool.data<__nv_bfloat16>(),
        norm.q_weight.raw(),
        norm.k_weight.raw(),
        norm.q_weight.dtype() == DType::bf16,
        norm.eps,
        static_cast<int>(q_rope.rotary_dim / 2),
        rope_frequencies(q_rope.theta, q_rope.rotary_dim)};
    FOURBIT_CUDA_CHECK(paged_attention::launch_decode_attention(launch.params, &prologue,
                                                                launch.grid, current_stream()));
    combine_splits(launch, shape);
}

}  // namespace fourbit::cuda
