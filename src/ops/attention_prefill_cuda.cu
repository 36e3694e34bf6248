// The tiled prefill attention kernel on the tensor cores (the design: attention_prefill_cuda.cuh).
#include <cuda_bf16.h>

#include "ops/attention_prefill_cuda.cuh"
#include "ops/attention_softmax_cuda.cuh"
#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/nvfp4_mma.cuh"

namespace fourbit::cuda::paged_attention {

namespace {

// Row strides. f32 staging: +4 floats. bf16 rows of q and keys: 68 words, transposed values: 20
// words, so that the 8 rows of 16 bytes an ldmatrix phase reads fall on 32 distinct banks.
constexpr int kStageStride = kPrefillDim + 4;
constexpr int kRowWords = kPrefillDim / 2 + 4;
constexpr int kValueWords = kPrefillPositions / 2 + 4;

// A 32-bit word holds two bf16, the lower index in the low half; q[0] holds the hi parts, q[1]
// the lo parts.
struct PrefillQueries {
    uint32_t q[2][kPrefillHeads * kPrefillTokens][kRowWords];  // row h * kPrefillTokens + token
    int pool_row[kPrefillPositions];  // the next tile's rows in the pool (-1: past the walk)
    int position[kPrefillTokens];     // the tile's tokens' positions (-1 past the batch)
    TileRuns runs;
};

// An f32 pool's tile: staged as read, then split (keys[0], values[0] the hi parts). Every row
// starts on 16 bytes (cp.async and vector accesses), past the queries' odd-sized tail too.
struct F32Tiles : PrefillQueries {
    static constexpr int kCtasPerSm = 1;  // ~124 KB of shared memory
    alignas(16) float key_stage[kPrefillPositions][kStageStride];
    alignas(16) float value_stage[kPrefillPositions][kStageStride];
    alignas(16) uint32_t keys[2][kPrefillPositions][kRowWords];
    alignas(16) uint32_t values[2][kPrefillDim][kValueWords];  // [dimension][pair of positions]
};

// A bf16 pool's tiles as stored, two stages (the next tile's while this one is multiplied).
struct Bf16Tiles : PrefillQueries {
    static constexpr int kCtasPerSm = 2;  // ~87 KB
    alignas(16) uint32_t keys[2][kPrefillPositions][kRowWords];
    alignas(16) uint32_t values[2][kPrefillPositions][kRowWords];
};

// d += a b with both operands split: three products, the small ones first.
__device__ __forceinline__ void mma_split(float (&d)[4], const uint32_t (&a_hi)[4],
                                          const uint32_t (&a_lo)[4], const uint32_t (&b_hi)[2],
                                          const uint32_t (&b_lo)[2]) {
    nvfp4::mma_bf16_16x8x16(d, a_lo, b_hi);
    nvfp4::mma_bf16_16x8x16(d, a_hi, b_lo);
    nvfp4::mma_bf16_16x8x16(d, a_hi, b_hi);
}

// Where positions [tile0, tile0 + 32) of the walk through `table` sit in the pool (-1 from walk_end
// on): threads 0 .. 31, once per tile, so that the copies need no division.
__device__ __forceinline__ void find_pool_rows(const AttentionParams& p, const int32_t* table,
                                               int tile0, int walk_end, PrefillQueries& s) {
    if (threadIdx.x < kPrefillPositions) {
        const int position = tile0 + static_cast<int>(threadIdx.x);
        const int block_size = static_cast<int>(p.block_size);
        s.pool_row[threadIdx.x] =
            position < walk_end ? static_cast<int>(pool_row(table, block_size, position)) : -1;
    }
}

// The tile whose rows find_pool_rows found, as 16-byte vectors of pool elements T to
// key_at(r, c) and value_at(r, c) (row r, element c), zeros past the walk and past head_dim.
// 64-bit offsets: a pool row times the row width can pass 2^31.
template <typename T, class KeyAt, class ValueAt>
__device__ __forceinline__ void copy_kv_rows(const AttentionParams& p, int kv_head,
                                             const int* pool_rows, KeyAt key_at, ValueAt value_at) {
    constexpr int kPerVector = 16 / sizeof(T);
    constexpr int kVectors = kPrefillDim / kPerVector;  // vectors per row
    const T* keys = static_cast<const T*>(p.keys);
    const T* values = static_cast<const T*>(p.values);
#pragma unroll 4
    for (int index = threadIdx.x; index < kPrefillPositions * kVectors; index += kPrefillThreads) {
        const int r = index / kVectors, c = kPerVector * (index % kVectors);
        const int row = pool_rows[r];
        const bool valid = row >= 0 && c < p.head_dim;
        const int64_t offset =
            valid ? static_cast<int64_t>(row) * p.kv_width + kv_head * p.head_dim + c : 0;
        copy_async_16(key_at(r, c), keys + offset, valid);
        copy_async_16(value_at(r, c), values + offset, valid);
    }
    commit_async_copies();
}

// An f32 pool's tile into the staging buffers; a bf16 pool's into stage `stage` as stored.
__device__ __forceinline__ void load_kv_tile(const AttentionParams& p, int kv_head, F32Tiles& s,
                                             int) {
    copy_kv_rows<float>(
        p, kv_head, s.pool_row, [&](int r, int c) { return &s.key_stage[r][c]; },
        [&](int r, int c) { return &s.value_stage[r][c]; });
}

__device__ __forceinline__ void load_kv_tile(const AttentionParams& p, int kv_head, Bf16Tiles& s,
                                             int stage) {
    copy_kv_rows<__nv_bfloat16>(
        p, kv_head, s.pool_row, [&](int r, int c) { return &s.keys[stage][r][c / 2]; },
        [&](int r, int c) { return &s.values[stage][r][c / 2]; });
}

// The staged tile as bf16 hi/lo: keys row-major, values transposed. (A bf16 pool's tile is
// multiplied as it landed.)
__device__ __forceinline__ void prepare_kv_tile(Bf16Tiles&) {}
__device__ __forceinline__ void prepare_kv_tile(F32Tiles& s) {
    constexpr int kVectors = kPrefillDim / 4;
#pragma unroll 4
    for (int index = threadIdx.x; index < kPrefillPositions * kVectors; index += kPrefillThreads) {
        const int r = index / kVectors, c = 4 * (index % kVectors);
        const float4 v = *reinterpret_cast<const float4*>(&s.key_stage[r][c]);
        uint2 hi, lo;
        split_pair(v.x, v.y, hi.x, lo.x);
        split_pair(v.z, v.w, hi.y, lo.y);
        *reinterpret_cast<uint2*>(&s.keys[0][r][c / 2]) = hi;
        *reinterpret_cast<uint2*>(&s.keys[1][r][c / 2]) = lo;
    }
    constexpr int kPairs = kPrefillPositions / 2;
#pragma unroll 2
    for (int index = threadIdx.x; index < kPairs * kVectors; index += kPrefillThreads) {
        const int pair = index % kPairs, c = 4 * (index / kPairs);
        const float4 even = *reinterpret_cast<const float4*>(&s.value_stage[2 * pair][c]);
        const float4 odd = *reinterpret_cast<const float4*>(&s.value_stage[2 * pair + 1][c]);
        split_pair(even.x, odd.x, s.values[0][c][pair], s.values[1][c][pair]);
        split_pair(even.y, odd.y, s.values[0][c + 1][pair], s.values[1][c + 1][pair]);
        split_pair(even.z, odd.z, s.values[0][c + 2][pair], s.values[1][c + 2][pair]);
        split_pair(even.w, odd.w, s.values[0][c + 3][pair], s.values[1][c + 3][pair]);
    }
}

// Rows (h, t) of the tile's 16 tokens as bf16 hi/lo; zeros for heads past the group, tokens past
// the batch and dimensions past head_dim (they then add nothing to any score).
__device__ __forceinline__ void load_queries(const AttentionParams& p, int first, int kv_head,
                                             PrefillQueries& s) {
    constexpr int kVectors = kPrefillDim / 4;
    constexpr int kRows = kPrefillHeads * kPrefillTokens;
    for (int index = threadIdx.x; index < kRows * kVectors; index += kPrefillThreads) {
        const int row = index / kVectors, c = 4 * (index % kVectors);
        const int h = row / kPrefillTokens, token = first + row % kPrefillTokens;
        float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (h < p.group && token < p.n_tokens && c < p.head_dim) {
            value = *reinterpret_cast<const float4*>(p.q + static_cast<int64_t>(token) * p.q_width +
                                                     (kv_head * p.group + h) * p.head_dim + c);
        }
        uint2 hi, lo;
        split_pair(value.x, value.y, hi.x, lo.x);
        split_pair(value.z, value.w, hi.y, lo.y);
        *reinterpret_cast<uint2*>(&s.q[0][row][c / 2]) = hi;
        *reinterpret_cast<uint2*>(&s.q[1][row][c / 2]) = lo;
    }
}

// ldmatrix row addresses: lane 8i + j gives row j of matrix i.
__device__ __forceinline__ int matrix_index() { return (threadIdx.x & 31) >> 3; }
__device__ __forceinline__ int matrix_row() { return threadIdx.x & 7; }

// The hi/lo A fragments of k-tile kt (dimensions 16kt ..) of warp h's rows, both m16 tiles.
__device__ __forceinline__ void load_query_fragments(const PrefillQueries& s, int h, int kt,
                                                     uint32_t (&q_hi)[kRowTiles][4],
                                                     uint32_t (&q_lo)[kRowTiles][4]) {
    const int i = matrix_index(), j = matrix_row();
    const uint32_t* q_row = &s.q[0][h * kPrefillTokens + j + 8 * (i & 1)][4 * (i >> 1)];
    constexpr int kQueryPlane =
        kPrefillHeads * kPrefillTokens * kRowWords;  // words from q[0] to q[1]
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
        nvfp4::load_matrices(q_hi[m], q_row + 16 * m * kRowWords + 8 * kt);
        nvfp4::load_matrices(q_lo[m], q_row + kQueryPlane + 16 * m * kRowWords + 8 * kt);
    }
}

// acc(m) += a[m] b for both m16 tiles, b the hi/lo B fragments (hi b0, b1, lo b0, b1) that
// ldmatrix gathers from `b_rows` (this lane's row address).
template <class Acc>
__device__ __forceinline__ void multiply_fragment(const uint32_t* b_rows,
                                                  const uint32_t (&a_hi)[kRowTiles][4],
                                                  const uint32_t (&a_lo)[kRowTiles][4], Acc acc) {
    uint32_t b[4];
    nvfp4::load_matrices(b, b_rows);
    const uint32_t b_hi[2] = {b[0], b[1]}, b_lo[2] = {b[2], b[3]};
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) mma_split(acc(m), a_hi[m], a_lo[m], b_hi, b_lo);
}

// acc(m, 0) += a[m] b0 and acc(m, 1) += a[m] b1 for both m16 tiles, b0 and b1 exact B fragments
// of two neighbouring n-tiles (words 0, 1 and 2, 3 of what ldmatrix gathered).
template <class Acc>
__device__ __forceinline__ void multiply_exact_pair(const uint32_t (&b)[4],
                                                    const uint32_t (&a_hi)[kRowTiles][4],
                                                    const uint32_t (&a_lo)[kRowTiles][4], Acc acc) {
    const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
        mma_split_a(acc(m, 0), a_hi[m], a_lo[m], b0);
        mma_split_a(acc(m, 1), a_hi[m], a_lo[m], b1);
    }
}

// score = q k^T over all 128 dimensions, whatever head_dim (the rest are zeros): loop bounds
// known at compile time keep each product one block of independent mma chains that the
// compiler interleaves. Each key fragment serves both m16 tiles.
__device__ __forceinline__ void tile_scores(const F32Tiles& s, int, int h,
                                            TileScores<kPrefillPositions>& score) {
    const int i = matrix_index(), j = matrix_row();
    const uint32_t* key_row =
        &s.keys[i >> 1][j][4 * (i & 1)];  // matrix i: plane i / 2, k half i % 2
#pragma unroll
    for (int kt = 0; kt < kPrefillDim / 16; ++kt) {
        uint32_t q_hi[kRowTiles][4], q_lo[kRowTiles][4];
        load_query_fragments(s, h, kt, q_hi, q_lo);
#pragma unroll
        for (int nt = 0; nt < kPrefillPositions / 8; ++nt) {
            multiply_fragment(key_row + 8 * nt * kRowWords + 8 * kt, q_hi, q_lo,
                              [&](int m) -> float(&)[4] { return score[m][nt]; });
        }
    }
}

__device__ __forceinline__ void tile_scores(const Bf16Tiles& s, int stage, int h,
                                            TileScores<kPrefillPositions>& score) {
    const int i = matrix_index(), j = matrix_row();
    // Matrix i: positions 8 (i / 2) .. of a pair of n-tiles, k half i % 2.
    const uint32_t* key_row = &s.keys[stage][j + 8 * (i >> 1)][4 * (i & 1)];
#pragma unroll
    for (int kt = 0; kt < kPrefillDim / 16; ++kt) {
        uint32_t q_hi[kRowTiles][4], q_lo[kRowTiles][4];
        load_query_fragments(s, h, kt, q_hi, q_lo);
#pragma unroll
        for (int pair = 0; pair < kPrefillPositions / 16; ++pair) {
            uint32_t b[4];
            nvfp4::load_matrices(b, key_row + 16 * pair * kRowWords + 8 * kt);
            multiply_exact_pair(
                b, q_hi, q_lo, [&](int m, int n) -> float(&)[4] { return score[m][2 * pair + n]; });
        }
    }
}

// out += p v, p the tile's softmax weights (in `score`), every value fragment serving both m16
// tiles.
__device__ __forceinline__ void accumulate_values(const F32Tiles& s, int,
                                                  const TileScores<kPrefillPositions>& score,
                                                  RowState& state) {
    const int i = matrix_index(), j = matrix_row();
    const uint32_t* value_row = &s.values[i >> 1][j][4 * (i & 1)];
#pragma unroll
    for (int kt = 0; kt < kPrefillPositions / 16; ++kt) {
        uint32_t p_hi[kRowTiles][4], p_lo[kRowTiles][4];
        split_weights<kPrefillPositions>(score, kt, p_hi, p_lo);
#pragma unroll
        for (int dt = 0; dt < kPrefillDim / 8; ++dt) {
            multiply_fragment(value_row + 8 * dt * kValueWords + 8 * kt, p_hi, p_lo,
                              [&](int m) -> float(&)[4] { return state.out[m][dt]; });
        }
    }
}

__device__ __forceinline__ void accumulate_values(const Bf16Tiles& s, int stage,
                                                  const TileScores<kPrefillPositions>& score,
                                                  RowState& state) {
    const int i = matrix_index(), j = matrix_row();
    // Matrix i, transposed: positions 8 (i % 2) .. of a k-tile, dimensions 8 (i / 2) .. of a pair
    // of n-tiles.
    const uint32_t* value_row = &s.values[stage][j + 8 * (i & 1)][4 * (i >> 1)];
#pragma unroll
    for (int kt = 0; kt < kPrefillPositions / 16; ++kt) {
        uint32_t p_hi[kRowTiles][4], p_lo[kRowTiles][4];
        split_weights<kPrefillPositions>(score, kt, p_hi, p_lo);
#pragma unroll
        for (int pair = 0; pair < kPrefillDim / 16; ++pair) {
            uint32_t b[4];
            load_matrices_transposed(b, value_row + 16 * kt * kRowWords + 8 * pair);
            multiply_exact_pair(b, p_hi, p_lo, [&](int m, int n) -> float(&)[4] {
                return state.out[m][2 * pair + n];
            });
        }
    }
}

// One tile for warp h's rows: scores, the causal mask, the online softmax, and out += p v.
template <class Tiles>
__device__ __forceinline__ void attend_tile(const Tiles& s, int stage, int h, int tile0,
                                            const WalkRows& rows, RowState& state) {
    TileScores<kPrefillPositions> score = {};
    tile_scores(s, stage, h, score);
    softmax_tile<kPrefillPositions>(score, tile0, rows, state);
    accumulate_values(s, stage, score, state);
}

// One run, tile tokens [begin, end), over this split's part of positions 0 .. its last one.
template <class Tiles>
__device__ __forceinline__ void attend_run(const AttentionParams& p, Tiles& s, int first,
                                           int kv_head, int begin, int end) {
    const int h = threadIdx.x >> 5;
    const WalkRows rows = walk_rows(p, s.position, 0, begin, end);
    const RunWalk w = run_walk<kPrefillPositions>(p, s.position, first, begin, end);

    RowState state;
    start_rows(state);
    __syncthreads();  // the previous run's readers are done with the buffers
    if (w.tiles > 0) {
        find_pool_rows(p, w.table, w.begin, w.end, s);
        __syncthreads();
        load_kv_tile(p, kv_head, s, 0);
    }
    // Tile i in stage i % 2 (an f32 pool's tiles: in the one staging buffer, then split).
    for (int i = 0; i < w.tiles; ++i) {
        const int tile0 = w.begin + i * kPrefillPositions;
        wait_async_copies<0>();
        __syncthreads();  // tile i has landed; everyone is done with tile i - 1's buffers
        prepare_kv_tile(s);
        if (i + 1 < w.tiles) find_pool_rows(p, w.table, tile0 + kPrefillPositions, w.end, s);
        __syncthreads();  // tile i's buffers and tile i + 1's rows are complete
        if (i + 1 < w.tiles) load_kv_tile(p, kv_head, s, (i + 1) & 1);
        if (h < p.group) attend_tile(s, i & 1, h, tile0, rows, state);
    }
    if (h < p.group) write_rows(p, first, 0, kv_head, h, rows, state);
}

// Grid: (tiles of 16 batch tokens, kv heads, splits); the tiles in reverse, so that the latest
// tokens (the longest walks) start first and the short ones fill the tail.
template <class Tiles>
__global__ void __launch_bounds__(kPrefillThreads, Tiles::kCtasPerSm)
    prefill_attention_kernel(AttentionParams p) {
    extern __shared__ float4 shared_words[];
    Tiles& s = *reinterpret_cast<Tiles*>(shared_words);
    const int first = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kPrefillTokens;
    const int kv_head = blockIdx.y;
    find_tile_runs<kPrefillTokens>(p, first, s.position, s.runs);
    load_queries(p, first, kv_head, s);
    __syncthreads();
    for_each_run<kPrefillTokens>(
        s.runs, [&](int begin, int end) { attend_run(p, s, first, kv_head, begin, end); });
}

}  // namespace

namespace {

template <class Tiles>
cudaError_t launch(const AttentionParams& p, int n_kv_heads, cudaStream_t stream) {
    const size_t bytes = sizeof(Tiles);
    const cudaError_t status = opt_in_shared_memory(prefill_attention_kernel<Tiles>, bytes);
    if (status != cudaSuccess) return status;
    const dim3 grid(static_cast<unsigned>((p.n_tokens + kPrefillTokens - 1) / kPrefillTokens),
                    static_cast<unsigned>(n_kv_heads), static_cast<unsigned>(p.n_splits));
    prefill_attention_kernel<Tiles><<<grid, kPrefillThreads, bytes, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace

// Shared memory opted in first.
cudaError_t launch_prefill_attention(const AttentionParams& p, int n_kv_heads, bool bf16_pool,
                                     cudaStream_t stream) {
    if (prefill_runs_wgmma(bf16_pool)) return launch_prefill_attention_wgmma(p, n_kv_heads, stream);
    return bf16_pool ? launch<Bf16Tiles>(p, n_kv_heads, stream)
                     : launch<F32Tiles>(p, n_kv_heads, stream);
}

bool prefill_fits(bool bf16_pool) {
    const size_t bytes = prefill_runs_wgmma(bf16_pool) ? prefill_wgmma_shared_bytes()
                         : bf16_pool                  ? sizeof(Bf16Tiles)
                                                      : sizeof(F32Tiles);
    return bytes <= shared_memory_per_cta();
}

int prefill_tile_tokens(bool bf16_pool) {
    return prefill_runs_wgmma(bf16_pool) ? kWgmmaPrefillTokens : kPrefillTokens;
}

}  // namespace fourbit::cuda::paged_attention
