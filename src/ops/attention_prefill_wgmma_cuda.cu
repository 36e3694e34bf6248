// The tiled prefill attention over a bf16 pool on Hopper's warpgroup tensor cores (wgmma, sm_90a):
// attention_prefill_cuda.cu's work and numerics (the design: attention_prefill_cuda.cuh), with
// the products issued a warpgroup at a time straight from shared memory instead of mma.sync on
// ldmatrix fragments.
//
// CTA: 32 batch tokens x 6 query heads of one kv head = 192 rows, 12 warps; warp w holds head
// w / 2 for tokens 16 (w % 2) .. + 15, one m16 tile as in the mma.sync kernel, so the online
// softmax (attention_softmax_cuda.cuh) is the same code. Three warpgroups of 64 rows: q (hi and
// lo, 96 KB) stays in shared memory for the whole walk, tiles of 64 keys and values arrive by
// cp.async in two stages, all in wgmma's canonical layout without swizzle (8 rows x 16 bytes a
// core matrix). Per tile a warpgroup issues 16 m64n64k16 for its scores (q lo then hi, keys
// exact) and, from the scores in registers (the m16n8 accumulators are the A fragments of p v),
// 8 m64n128k16 for p v (p lo then hi, values MN-major).
#include <cuda_bf16.h>

#include "ops/attention_prefill_cuda.cuh"
#include "ops/attention_softmax_cuda.cuh"
#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/wgmma.cuh"

namespace fourbit::cuda::paged_attention {

namespace {

constexpr int kTokens = kWgmmaPrefillTokens;
constexpr int kWarps = 2 * kPrefillHeads;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = kPrefillHeads * kTokens;  // row 32 h + t: head h, tile token t
constexpr int kKeys = 64;                       // positions a tile
// Tile i's keys and values in stage i % 2: tile i + 1's land while i is multiplied.
constexpr int kStages = 2;
// A block of 8 rows: 16 core matrices of 8 rows x 16 bytes (8 dimensions), k-adjacent ones 128
// bytes apart.
constexpr int kChunks = kPrefillDim / 8;
constexpr int kBlockBytes = kChunks * 128;
static_assert(kRows % 64 == 0, "whole warpgroups");

struct Shared {
    alignas(128) unsigned char q[2][kRows / 8][kBlockBytes];           // [hi, lo][row block]
    alignas(128) unsigned char keys[kStages][kKeys / 8][kBlockBytes];  // [stage][8 positions]
    alignas(128) unsigned char values[kStages][kKeys / 8][kBlockBytes];
    int pool_row[2][kKeys];  // the next two tiles' rows in the pool (-1: past the walk)
    int position[kTokens];
    TileRuns runs;
};

#ifdef FOURBIT_WGMMA

// Byte offset of (row, 16-byte chunk c) in a run of 8-row blocks.
__device__ __forceinline__ int core_offset(int row, int c) {
    return (row >> 3) * kBlockBytes + c * 128 + (row & 7) * 16;
}

// Rows (h, t) of the tile's tokens as bf16 hi/lo; zeros for heads past the group, tokens past the
// batch and dimensions past head_dim (they then add nothing to any score). Thread i takes row
// 8 (i / 128) + i % 8, chunk (i / 8) % 16: a warp's stores fill 512 contiguous bytes.
__device__ __forceinline__ void load_queries(const AttentionParams& p, int first, int kv_head,
                                             Shared& s) {
    for (int index = threadIdx.x; index < kRows * kChunks; index += kThreads) {
        const int row = (index >> 7) * 8 + (index & 7), c = (index >> 3) & (kChunks - 1);
        const int h = row / kTokens, token = first + row % kTokens, dim = 8 * c;
        float4 low = make_float4(0.0f, 0.0f, 0.0f, 0.0f), high = low;
        if (h < p.group && token < p.n_tokens && dim < p.head_dim) {
            const float* from = p.q + static_cast<int64_t>(token) * p.q_width +
                                (kv_head * p.group + h) * p.head_dim + dim;
            low = *reinterpret_cast<const float4*>(from);
            high = *reinterpret_cast<const float4*>(from + 4);
        }
        uint4 hi, lo;
        split_pair(low.x, low.y, hi.x, lo.x);
        split_pair(low.z, low.w, hi.y, lo.y);
        split_pair(high.x, high.y, hi.z, lo.z);
        split_pair(high.z, high.w, hi.w, lo.w);
        *reinterpret_cast<uint4*>(&s.q[0][0][core_offset(row, c)]) = hi;
        *reinterpret_cast<uint4*>(&s.q[1][0][core_offset(row, c)]) = lo;
    }
}

// Where positions [tile0, tile0 + kKeys) of the walk sit in the pool (-1 from walk_end on).
__device__ __forceinline__ void find_pool_rows(const AttentionParams& p, const int32_t* table,
                                               int tile0, int walk_end, int (&rows)[kKeys]) {
    if (threadIdx.x < kKeys) {
        const int position = tile0 + static_cast<int>(threadIdx.x);
        const int block_size = static_cast<int>(p.block_size);
        rows[threadIdx.x] =
            position < walk_end ? static_cast<int>(pool_row(table, block_size, position)) : -1;
    }
}

// The tile whose rows find_pool_rows found into stage `stage`, zeros past the walk and past
// head_dim. Thread t copies chunk c = (t / 8) % 16 of positions r0 + 24j, r0 = 8 (t / 128) +
// t % 8 (copy i = t + 384j of position 8 (i / 128) + i % 8, chunk (i / 8) % 16, with the divisions
// done once): 8 threads read 16 bytes of 8 rows, a warp 64 contiguous bytes of each, and its
// stores fill 512 contiguous bytes.
__device__ __forceinline__ void load_kv_tile(const AttentionParams& p, int kv_head,
                                             const int (&pool_rows)[kKeys], Shared& s, int stage) {
    static_assert(kThreads % 128 == 0, "a pass is whole 8-row blocks");
    constexpr int kPassRows = kThreads / kChunks;  // positions a pass of all threads copies
    const __nv_bfloat16* keys = static_cast<const __nv_bfloat16*>(p.keys);
    const __nv_bfloat16* values = static_cast<const __nv_bfloat16*>(p.values);
    const int t = threadIdx.x, c = (t >> 3) & (kChunks - 1), r0 = (t >> 7) * 8 + (t & 7);
    const bool in_head = 8 * c < p.head_dim;
    const int column = kv_head * p.head_dim + 8 * c;
    unsigned char* key_stage = &s.keys[stage][0][core_offset(r0, c)];
    unsigned char* value_stage = &s.values[stage][0][core_offset(r0, c)];
#pragma unroll
    for (int j = 0; j * kPassRows < kKeys; ++j) {
        const int r = r0 + kPassRows * j;
        if (r >= kKeys) break;
        const int row = pool_rows[r];
        const bool valid = row >= 0 && in_head;
        const int64_t offset = valid ? static_cast<int64_t>(row) * p.kv_width + column : 0;
        const int shared = (kPassRows / 8) * kBlockBytes * j;  // r0 + 24j: 3j blocks on
        copy_async_16(key_stage + shared, keys + offset, valid);
        copy_async_16(value_stage + shared, values + offset, valid);
    }
    commit_async_copies();
}

// One tile for this warpgroup's rows: scores = q k^T, the causal mask and online softmax (the
// warp's own rows), out += p v. Every thread of the warpgroup calls it: wgmma is collective.
__device__ __forceinline__ void attend_tile(const Shared& s, int stage, int tile0,
                                            const WalkRows& rows, RowState& state) {
    const int warpgroup = threadIdx.x >> 7;
    TileScores<kKeys> score;
    float(&d)[kKeys / 2] = reinterpret_cast<float(&)[kKeys / 2]>(score);
    // k-tile kt: dimensions 16kt .. (two chunks, 256 bytes on).
    const uint64_t q_hi = wgmma::descriptor(s.q[0][8 * warpgroup], 128, kBlockBytes);
    const uint64_t q_lo = wgmma::descriptor(s.q[1][8 * warpgroup], 128, kBlockBytes);
    const uint64_t keys = wgmma::descriptor(s.keys[stage][0], 128, kBlockBytes);
    wgmma::fence_operands();
    wgmma::mma_64x64<false>(d, q_lo, keys);
    wgmma::mma_64x64<true>(d, q_hi, keys);
#pragma unroll
    for (int kt = 1; kt < kPrefillDim / 16; ++kt) {
        wgmma::mma_64x64<true>(d, wgmma::advance(q_lo, 256 * kt), wgmma::advance(keys, 256 * kt));
        wgmma::mma_64x64<true>(d, wgmma::advance(q_hi, 256 * kt), wgmma::advance(keys, 256 * kt));
    }
    wgmma::commit_group();
    wgmma::wait_group<0>();
    wgmma::pin(d);

    softmax_tile<kKeys>(score, tile0, rows, state);

    // k-tile kt of p v: positions 16kt .. (two 8-position blocks, 2 KB apart each); the values'
    // k-adjacent core matrices are a block apart, the n-adjacent ones (dimensions) 128 bytes.
    uint32_t p_hi[kKeys / 16][kRowTiles][4], p_lo[kKeys / 16][kRowTiles][4];
#pragma unroll
    for (int kt = 0; kt < kKeys / 16; ++kt) split_weights<kKeys>(score, kt, p_hi[kt], p_lo[kt]);
    float(&out)[64] = reinterpret_cast<float(&)[64]>(state.out);
    const uint64_t values = wgmma::descriptor(s.values[stage][0], kBlockBytes, 128);
    wgmma::fence_operands();
#pragma unroll
    for (int kt = 0; kt < kKeys / 16; ++kt) {
        const uint64_t b = wgmma::advance(values, 2 * kBlockBytes * kt);
        wgmma::mma_64x128_mn(out, p_lo[kt][0], b);
        wgmma::mma_64x128_mn(out, p_hi[kt][0], b);
    }
    // Waited for here: ptxas would wait at once anyway, p's registers being live in flight.
    wgmma::commit_group();
    wgmma::wait_group<0>();
    wgmma::pin(out);
}

// One run, tile tokens [begin, end), over this split's part of positions 0 .. its last one.
__device__ __forceinline__ void attend_run(const AttentionParams& p, Shared& s, int first,
                                           int kv_head, int begin, int end) {
    const int warp = threadIdx.x >> 5, h = warp / 2, row0 = 16 * (warp % 2);
    const WalkRows rows = walk_rows(p, s.position, row0, begin, end);
    const RunWalk w = run_walk<kKeys>(p, s.position, first, begin, end);

    RowState state;
    start_rows(state);
    __syncthreads();  // the previous run's readers are done with the buffers
    if (w.tiles > 0) {
        find_pool_rows(p, w.table, w.begin, w.end, s.pool_row[0]);
        __syncthreads();
        load_kv_tile(p, kv_head, s.pool_row[0], s, 0);
        if (w.tiles > 1) find_pool_rows(p, w.table, w.begin + kKeys, w.end, s.pool_row[1]);
    }
    for (int i = 0; i < w.tiles; ++i) {
        const int tile0 = w.begin + i * kKeys;
        wait_async_copies<0>();
        wgmma::fence_async_proxy();
        // Tile i has landed and tile i + 1's rows are found; every warpgroup is done with tile
        // i - 1, whose stage tile i + 1 takes.
        __syncthreads();
        if (i + 1 < w.tiles) {
            load_kv_tile(p, kv_head, s.pool_row[(i + 1) & 1], s, (i + 1) % kStages);
        }
        if (i + 2 < w.tiles) {
            find_pool_rows(p, w.table, tile0 + 2 * kKeys, w.end, s.pool_row[i & 1]);
        }
        attend_tile(s, i % kStages, tile0, rows, state);
    }
    if (h < p.group) write_rows(p, first, row0, kv_head, h, rows, state);
}

#endif  // FOURBIT_WGMMA

// Grid: (tiles of 32 batch tokens, kv heads, splits); the tiles in reverse, so that the latest
// tokens (the longest walks) start first and the short ones fill the tail.
__global__ void __launch_bounds__(kThreads, 1) prefill_attention_wgmma_kernel(AttentionParams p) {
#ifdef FOURBIT_WGMMA
    extern __shared__ float4 shared_words[];
    Shared& s = *reinterpret_cast<Shared*>(shared_words);
    const int first = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kTokens;
    const int kv_head = blockIdx.y;
    find_tile_runs<kTokens>(p, first, s.position, s.runs);
    load_queries(p, first, kv_head, s);
    wgmma::fence_async_proxy();
    __syncthreads();
    for_each_run<kTokens>(
        s.runs, [&](int begin, int end) { attend_run(p, s, first, kv_head, begin, end); });
#endif
}

}  // namespace

bool prefill_runs_wgmma(bool bf16_pool) { return bf16_pool && wgmma::runs_wgmma(); }

size_t prefill_wgmma_shared_bytes() { return sizeof(Shared); }

cudaError_t launch_prefill_attention_wgmma(const AttentionParams& p, int n_kv_heads,
                                           cudaStream_t stream) {
    // A split ends on a tile's end: keys past a walk are zeros that only the causal mask hides.
    if (p.n_splits > 1 && p.split % kKeys != 0) return cudaErrorInvalidValue;
    const size_t bytes = sizeof(Shared);
    const cudaError_t status = opt_in_shared_memory(prefill_attention_wgmma_kernel, bytes);
    if (status != cudaSuccess) return status;
    const dim3 grid(static_cast<unsigned>((p.n_tokens + kTokens - 1) / kTokens),
                    static_cast<unsigned>(n_kv_heads), static_cast<unsigned>(p.n_splits));
    prefill_attention_wgmma_kernel<<<grid, kThreads, bytes, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace fourbit::cuda::paged_attention
