// Paged attention on CUDA for steps of many tokens (prefill chunks): the tiled kernel that
// attention_cuda.cu launches beside its per-token kernel, and what the two share. Included by
// attention_cuda.cu and by the benchmark's ladder of CTA shapes (bench/cuda_kernels_bench.cu).
//
// The per-token kernel loads a token's keys and values once per (token, kv head): a 4096-token
// prompt reads ~67 GB per layer that way. Here one CTA takes 16 consecutive tokens of one
// sequence and a kv head, loads each tile of 64 keys and values once into shared memory for all
// 16 tokens x 6 query heads (96 rows), and runs both products (scores = q k^T, out += p v) as
// register-tiled f32 FMAs with an online softmax per row. f32 throughout, as the contract says:
// tensor cores would need tf32 or bf16 operands, which miss the op's tests' 5e-5 bound.
//
// CTA layout: 256 threads, thread (t, x) = (tid / 16, tid % 16). Row (g, t) = query head g of the
// group for the tile's token t; shared q holds it at g * 16 + t.
//   scores    thread (t, x): rows (g, t) for g < 6 x key columns x, x + 16, x + 32, x + 48
//   softmax   a row's 16 threads are half a warp: its maximum by shuffles, then P to shared
//   output    thread (t, x): rows (g, t) x dimensions 4x .. 4x + 3 and 64 + 4x .. 64 + 4x + 3
// A thread owns all rows of one token, so the causal mask is one comparison per column, and a
// row's running maximum and rescale factor stay in the registers of the threads that need them.
//
// Which tokens: a run is consecutive batch tokens of one sequence (one table offset) at
// consecutive positions. Tokens of runs of at least kMinRun tokens are the tiled kernel's, the
// rest (decodes, short speculative chunks) the per-token kernel's, which skips the others. Both
// decide on the device with in_long_run: the launch must not read the batch back (graphs).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fourbit::cuda::paged_attention {

struct AttentionParams {
    const float* q;
    const float* keys;
    const float* values;
    const int32_t* positions;
    const int32_t* table_offsets;
    const int32_t* tables;
    float* out;
    int64_t block_size;
    int group;  // query heads per kv head
    int head_dim;
    int q_width;
    int kv_width;
    float scale;
    // Split context (flash-decoding): CTA z covers positions [z split, (z + 1) split) and, with
    // more than one split, leaves its unnormalised output and softmax state in `partial`
    // ([T][n_heads][splits] of d outputs, max, sum) for combine_kernel.
    int split;
    int n_splits;
    float* partial;
    int n_tokens;
    // Set when the tiled kernel runs too: the per-token kernel leaves it the long runs' tokens.
    bool skip_long_runs;
};

constexpr int kPrefillHeads = 6;       // query heads per kv head it holds (MiniMax-M2's group)
constexpr int kPrefillDim = 128;       // head_dim it holds; smaller ones are zero-padded
constexpr int kPrefillPositions = 64;  // keys and values per shared tile
// Steps of more tokens than this take the tiled kernel (smaller ones are decodes and
// verification, recorded as graphs, on the per-token kernel as before).
constexpr int kPrefillMinTokens = 64;
// The shortest run the tiled kernel takes. Its CTA costs the same per key whatever part of its
// 16 tokens a run fills, and it walks its runs one after another: half a tile at least, so that
// a CTA walks at most three runs (two at its edges that continue in the next tiles, one between)
// and a step of short speculative chunks stays on the per-token kernel, which spreads them.
constexpr int kMinRun = 8;

// Row strides, in floats. Keys: +4 puts the 8 rows a quarter-warp reads as 16-byte vectors on
// distinct banks. P: +16 puts the two tokens of a warp half a bank cycle apart, so that the
// score writes of its two halves never collide.
constexpr int kKeyStride = kPrefillDim + 4;
constexpr int kProbStride = kPrefillPositions + 16;

// A CTA's shape: kTokens batch tokens (16 threads each) and kBuffers shared K/V buffers (2: the
// next tile loads during this one). The production one is PrefillTiling<16, 2>; the benchmark
// ladder measures others.
template <int kTokensParameter, int kBuffersParameter>
struct PrefillTiling {
    static constexpr int kTokens = kTokensParameter;
    static constexpr int kBuffers = kBuffersParameter;
    static constexpr int kThreads = kTokens * 16;
    static constexpr int kRows = kTokens * kPrefillHeads;
    static_assert(kTokens >= kMinRun && kTokens <= 32, "a long run fits a tile; one warp finds the runs");
    // Blocks an SM holds (registers and shared memory allow it): a launch bound.
    static constexpr int kCtasPerSm = kTokens == 16 ? 1 : 2;
    struct Shared {
        float q[kRows][kKeyStride];
        float k[kBuffers][kPrefillPositions][kKeyStride];
        float v[kBuffers][kPrefillPositions][kPrefillDim];
        float p[kRows][kProbStride];
        int position[kTokens];  // the tile's tokens' positions (-1 past the batch)
        unsigned long_runs;     // bit t: tile token t belongs to a long run
        unsigned run_starts;    // bit t: and the tile's part of its run starts there
    };
};
using ProductionTiling = PrefillTiling<16, 2>;

// Whether batch token i (> 0) continues token i - 1's run.
__device__ __forceinline__ bool continues_run(const int32_t* positions, const int32_t* offsets,
                                              int i) {
    return offsets[i] == offsets[i - 1] && positions[i] == positions[i - 1] + 1;
}

// Whether batch token i belongs to a run of at least kMinRun tokens: the same answer for every
// token of a run, looking at most kMinRun - 1 tokens either side.
__device__ __forceinline__ bool in_long_run(const int32_t* positions, const int32_t* offsets,
                                            int n_tokens, int i) {
    int length = 1;
    for (int j = i; j > 0 && length < kMinRun && continues_run(positions, offsets, j); --j) ++length;
    for (int j = i + 1; j < n_tokens && length < kMinRun && continues_run(positions, offsets, j); ++j) {
        ++length;
    }
    return length >= kMinRun;
}

// 16 bytes global -> shared without a trip through registers, so that the next tile's loads
// overlap this tile's math; .cg keeps them out of L1 (each CTA reads a tile once). A source size
// of 0 writes zeros instead: positions past the walk and dimensions past head_dim must be 0 in
// shared memory, or p v would turn stale bits into NaN.
__device__ __forceinline__ void copy_16_async(float* shared, const float* global, bool valid) {
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void commit_async_copies() { asm volatile("cp.async.commit_group;\n" ::); }
// This thread's copies have landed (a __syncthreads then makes everyone's visible).
__device__ __forceinline__ void wait_async_copies() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Reductions over the 16 threads of a row: half a warp, whose other half may be idle (a token
// outside the run being walked), so the shuffles name only this half.
__device__ __forceinline__ unsigned half_warp_mask() { return 0xffffu << (threadIdx.x & 16); }
__device__ __forceinline__ float half_warp_max(float v) {
    for (int offset = 8; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(half_warp_mask(), v, offset));
    return v;
}
__device__ __forceinline__ float half_warp_sum(float v) {
    for (int offset = 8; offset > 0; offset /= 2) v += __shfl_xor_sync(half_warp_mask(), v, offset);
    return v;
}

// Positions [tile0, tile0 + 64) of the walk through `table` into one shared buffer, zeros from
// walk_end on. 32-bit index arithmetic: positions and block sizes fit, and a 64-bit division is
// a long software routine on the GPU.
template <class Tiling>
__device__ __forceinline__ void load_kv_tile(const AttentionParams& p, const int32_t* table,
                                             int kv_head, int tile0, int walk_end,
                                             float (*keys)[kKeyStride], float (*values)[kPrefillDim]) {
    const int block_size = static_cast<int>(p.block_size);
    constexpr int kVectors = kPrefillDim / 4;  // 16-byte vectors per row; a warp copies one row
#pragma unroll
    for (int i = 0; i < kPrefillPositions * kVectors / Tiling::kThreads; ++i) {
        const int index = threadIdx.x + i * Tiling::kThreads;
        const int r = index / kVectors, c = 4 * (index % kVectors);
        const int position = tile0 + r;
        const bool valid = position < walk_end && c < p.head_dim;
        int64_t offset = 0;
        if (valid) {
            const int64_t row = static_cast<int64_t>(table[position / block_size]) * block_size +
                                position % block_size;
            offset = row * p.kv_width + kv_head * p.head_dim + c;
        }
        copy_16_async(&keys[r][c], p.keys + offset, valid);
        copy_16_async(&values[r][c], p.values + offset, valid);
    }
    commit_async_copies();
}

// Rows (g, t) of the tile's 16 tokens into shared memory; zeros for heads past the group,
// tokens past the batch and dimensions past head_dim (they then add nothing to any score).
template <class Tiling>
__device__ __forceinline__ void load_queries(const AttentionParams& p, int first, int kv_head,
                                             typename Tiling::Shared& s) {
    constexpr int kVectors = kPrefillDim / 4;
    for (int index = threadIdx.x; index < Tiling::kRows * kVectors; index += Tiling::kThreads) {
        const int row = index / kVectors, c = 4 * (index % kVectors);
        const int g = row / Tiling::kTokens, token = first + row % Tiling::kTokens;
        float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (g < p.group && token < p.n_tokens && c < p.head_dim) {
            value = *reinterpret_cast<const float4*>(p.q + static_cast<int64_t>(token) * p.q_width +
                                                     (kv_head * p.group + g) * p.head_dim + c);
        }
        *reinterpret_cast<float4*>(&s.q[row][c]) = value;
    }
}

// The running state of thread (t, x)'s rows (g, t) over one walk.
struct RowState {
    float acc[kPrefillHeads][8];     // its 8 output dimensions, unnormalised
    float max[kPrefillHeads];        // the row's running maximum (the same in its 16 threads)
    float sum[kPrefillHeads];        // this thread's share of the row's running sum
};

// Scores of rows (g, t) against the tile's keys, masked causally, into P; the running state
// rescaled to the new maxima.
template <class Tiling>
__device__ __forceinline__ void score_tile(const AttentionParams& p, typename Tiling::Shared& s,
                                           const float (*keys)[kKeyStride], int tile0,
                                           int my_position, RowState& state) {
    const int t = threadIdx.x / 16, x = threadIdx.x % 16;
    float score[kPrefillHeads][4];
#pragma unroll
    for (int g = 0; g < kPrefillHeads; ++g) {
#pragma unroll
        for (int j = 0; j < 4; ++j) score[g][j] = 0.0f;
    }
    // Per 4 dimensions: 10 vector loads (q broadcast to the half-warp, keys 16 rows) for 96 FMAs.
#pragma unroll 4
    for (int k = 0; k < kPrefillDim; k += 4) {
        float4 query[kPrefillHeads], key[4];
#pragma unroll
        for (int g = 0; g < kPrefillHeads; ++g) {
            query[g] = *reinterpret_cast<const float4*>(&s.q[g * Tiling::kTokens + t][k]);
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) key[j] = *reinterpret_cast<const float4*>(&keys[x + 16 * j][k]);
#pragma unroll
        for (int g = 0; g < kPrefillHeads; ++g) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                float dot = score[g][j];
                dot = fmaf(query[g].x, key[j].x, dot);
                dot = fmaf(query[g].y, key[j].y, dot);
                dot = fmaf(query[g].z, key[j].z, dot);
                dot = fmaf(query[g].w, key[j].w, dot);
                score[g][j] = dot;
            }
        }
    }
#pragma unroll
    for (int g = 0; g < kPrefillHeads; ++g) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const bool visible = tile0 + x + 16 * j <= my_position;  // causal (and the walk's end)
            score[g][j] = visible ? score[g][j] * p.scale : -INFINITY;
            tile_max = fmaxf(tile_max, score[g][j]);
        }
        const float new_max = fmaxf(state.max[g], half_warp_max(tile_max));
        // A row that has seen nothing yet (a split before its position): weights and factor 0.
        const float base = new_max == -INFINITY ? 0.0f : new_max;
        const float factor = expf(state.max[g] - base);  // 0 on the row's first visible tile
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float weight = expf(score[g][j] - base);
            s.p[g * Tiling::kTokens + t][x + 16 * j] = weight;
            sum += weight;
        }
        state.sum[g] = state.sum[g] * factor + sum;
        state.max[g] = new_max;
#pragma unroll
        for (int c = 0; c < 8; ++c) state.acc[g][c] *= factor;
    }
}

// out += P v for rows (g, t), dimensions 4x .. 4x + 3 and 64 + 4x .. 64 + 4x + 3.
template <class Tiling>
__device__ __forceinline__ void accumulate_tile(const typename Tiling::Shared& s,
                                                const float (*values)[kPrefillDim], RowState& state) {
    const int t = threadIdx.x / 16, x = threadIdx.x % 16;
    // Per 4 positions: 6 vector loads of P (broadcast) and 8 of values for 192 FMAs.
#pragma unroll 2
    for (int n = 0; n < kPrefillPositions; n += 4) {
        float weight[kPrefillHeads][4];
#pragma unroll
        for (int g = 0; g < kPrefillHeads; ++g) {
            const float4 w = *reinterpret_cast<const float4*>(&s.p[g * Tiling::kTokens + t][n]);
            weight[g][0] = w.x;
            weight[g][1] = w.y;
            weight[g][2] = w.z;
            weight[g][3] = w.w;
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float4 low = *reinterpret_cast<const float4*>(&values[n + e][4 * x]);
            const float4 high = *reinterpret_cast<const float4*>(&values[n + e][64 + 4 * x]);
            const float v[8] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
#pragma unroll
            for (int g = 0; g < kPrefillHeads; ++g) {
#pragma unroll
                for (int c = 0; c < 8; ++c) state.acc[g][c] = fmaf(weight[g][e], v[c], state.acc[g][c]);
            }
        }
    }
}

// Thread (t, x)'s rows, normalised into out or, split, as partial state for combine_kernel.
__device__ __forceinline__ void write_rows(const AttentionParams& p, int token, int kv_head,
                                           const RowState& state) {
    const int x = threadIdx.x % 16, d = p.head_dim;
#pragma unroll
    for (int g = 0; g < kPrefillHeads; ++g) {
        const float total = half_warp_sum(state.sum[g]);
        if (g >= p.group) continue;
        const int64_t head = static_cast<int64_t>(token) * (p.q_width / d) + kv_head * p.group + g;
        float* partial = p.partial + (head * p.n_splits + blockIdx.z) * (d + 2);
#pragma unroll
        for (int c = 0; c < 8; ++c) {
            const int i = (c < 4 ? 4 * x : 64 + 4 * x - 4) + c;
            if (i >= d) continue;
            if (p.n_splits > 1) {
                partial[i] = state.acc[g][c];
            } else {
                p.out[static_cast<int64_t>(token) * p.q_width + (kv_head * p.group + g) * d + i] =
                    state.acc[g][c] / total;
            }
        }
        if (p.n_splits > 1 && x == 0) {
            partial[d] = state.max[g];
            partial[d + 1] = total;
        }
    }
}

// One run, tile tokens [begin, end), over this split's part of positions 0 .. its last one.
template <class Tiling>
__device__ __forceinline__ void attend_run(const AttentionParams& p, typename Tiling::Shared& s, int first,
                                           int kv_head, int begin, int end) {
    const int t = threadIdx.x / 16;
    const bool mine = t >= begin && t < end;
    const int my_position = s.position[t];
    const int32_t* table = p.tables + p.table_offsets[first + begin];
    const int walk_begin = static_cast<int>(blockIdx.z) * p.split;
    const int walk_end = min(walk_begin + p.split, s.position[end - 1] + 1);
    const int n_tiles = walk_end > walk_begin ? (walk_end - walk_begin + kPrefillPositions - 1) / kPrefillPositions : 0;

    RowState state;
#pragma unroll
    for (int g = 0; g < kPrefillHeads; ++g) {
        state.max[g] = -INFINITY;
        state.sum[g] = 0.0f;
#pragma unroll
        for (int c = 0; c < 8; ++c) state.acc[g][c] = 0.0f;
    }
    __syncthreads();  // the previous run's readers are done with the buffers
    if constexpr (Tiling::kBuffers == 2) {
        if (n_tiles > 0) load_kv_tile<Tiling>(p, table, kv_head, walk_begin, walk_end, s.k[0], s.v[0]);
    }
    for (int i = 0; i < n_tiles; ++i) {
        const int buffer = Tiling::kBuffers == 2 ? i & 1 : 0;
        const int tile0 = walk_begin + i * kPrefillPositions;
        if constexpr (Tiling::kBuffers == 2) {
            wait_async_copies();
            __syncthreads();  // tile i is everyone's; everyone is done with tile i - 1 and P
            if (i + 1 < n_tiles) {
                load_kv_tile<Tiling>(p, table, kv_head, tile0 + kPrefillPositions, walk_end,
                                     s.k[buffer ^ 1], s.v[buffer ^ 1]);
            }
        } else {  // one buffer: another CTA on the SM computes while this one loads
            if (i > 0) __syncthreads();  // everyone is done with tile i - 1 and P
            load_kv_tile<Tiling>(p, table, kv_head, tile0, walk_end, s.k[0], s.v[0]);
            wait_async_copies();
            __syncthreads();
        }
        if (mine) score_tile<Tiling>(p, s, s.k[buffer], tile0, my_position, state);
        __syncthreads();  // P is complete
        if (mine) accumulate_tile<Tiling>(s, s.v[buffer], state);
    }
    if (mine) write_rows(p, first + t, kv_head, state);
}

// Grid: (tiles of kTokens batch tokens, kv heads, splits); the tiles in reverse, so that the
// latest tokens (the longest walks) start first and the short ones fill the tail.
template <class Tiling>
__global__ void __launch_bounds__(Tiling::kThreads, Tiling::kCtasPerSm)
    prefill_attention_kernel(AttentionParams p) {
    extern __shared__ float4 shared_words[];
    typename Tiling::Shared& s = *reinterpret_cast<typename Tiling::Shared*>(shared_words);
    const int first = static_cast<int>(gridDim.x - 1 - blockIdx.x) * Tiling::kTokens;
    const int kv_head = blockIdx.y;
    if (threadIdx.x < 32) {
        const int token = first + static_cast<int>(threadIdx.x);
        const bool here = threadIdx.x < Tiling::kTokens && token < p.n_tokens;
        const bool long_run = here && in_long_run(p.positions, p.table_offsets, p.n_tokens, token);
        const bool starts = long_run && (threadIdx.x == 0 || !continues_run(p.positions, p.table_offsets, token));
        const unsigned long_runs = __ballot_sync(~0u, long_run);
        const unsigned run_starts = __ballot_sync(~0u, starts);
        if (threadIdx.x < Tiling::kTokens) s.position[threadIdx.x] = here ? p.positions[token] : -1;
        if (threadIdx.x == 0) {
            s.long_runs = long_runs;
            s.run_starts = run_starts;
        }
    }
    load_queries<Tiling>(p, first, kv_head, s);
    __syncthreads();
    const unsigned long_runs = s.long_runs, run_starts = s.run_starts;
    // The tile's parts of long runs, one walk each (the same loop in every thread).
    for (unsigned starts = run_starts; starts != 0; starts &= starts - 1) {
        const int begin = __ffs(static_cast<int>(starts)) - 1;
        int end = begin + 1;
        while (end < Tiling::kTokens && (long_runs >> end & 1u) && !(run_starts >> end & 1u)) ++end;
        attend_run<Tiling>(p, s, first, kv_head, begin, end);
    }
}

// Launches the tiled kernel over n_tokens batch tokens (shared memory opted in first).
template <class Tiling>
inline cudaError_t launch_prefill_attention(const AttentionParams& p, int n_kv_heads, cudaStream_t stream) {
    const size_t bytes = sizeof(typename Tiling::Shared);
    const cudaError_t status = cudaFuncSetAttribute(prefill_attention_kernel<Tiling>,
                                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(bytes));
    if (status != cudaSuccess) return status;
    const dim3 grid(static_cast<unsigned>((p.n_tokens + Tiling::kTokens - 1) / Tiling::kTokens),
                    static_cast<unsigned>(n_kv_heads), static_cast<unsigned>(p.n_splits));
    prefill_attention_kernel<Tiling><<<grid, Tiling::kThreads, bytes, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace fourbit::cuda::paged_attention
