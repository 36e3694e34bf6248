// The NVFP4 weight-only GEMV family for decode (1 to 16 tokens): dense linear, MoE gate/up with
// SiLU, MoE down with the routed sum. FP4 weights dequantized in registers, activations f32
// rounded to bf16 for the tensor cores (or bf16 rows a producer already rounded: the linear's x
// and gate/up's h), f32 accumulation. Included by linear_cuda.cu,
// moe_cuda.cu and the benchmark ladder, so the benchmark times exactly these kernels.
//
// Partition (one CTA = 8 warps = one stripe of 16 output rows):
//
//        k groups of 64 columns  ->
//   +------+------+------+-- ... --+------+
//   |  w0  |  w1  |  w2  |   ...   |  w7  |   16 rows: warp w takes groups [w G/8, (w+1) G/8),
//   +------+------+------+-- ... --+------+   all of its loads of a chunk in flight at once;
//   partial sums meet in shared memory in a fixed order (deterministic, no atomics).
//
// The MoE gate/up kernel's CTA walks four stripes in turn (one expert id and h row for them
// all, about one wave of CTAs). The MoE down kernel instead gives warp w the routed slot w over
// the whole k, so the routed sum is the same fixed-order shared-memory reduction. (Measured
// 2026-11-26, H100: k split over the warps with a slot per CTA and a separate sum kernel took
// 15.9 + 3.5 us against 18.2.) The activations reach the mma as bf16 fragments staged once per
// CTA (stage_rows): one 8-byte shared load per k-tile and token tile.
#pragma once

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <utility>

#include "ops/cuda/cluster_copy.cuh"
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/nvfp4_mma.cuh"

namespace fourbit::cuda::nvfp4 {

inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;
inline constexpr int kGroupCols = 64;

// One chunk of a warp's weights: kChunk groups, 16 bytes of codes and 8 of scales per lane each.
template <int kChunk>
struct WeightChunk {
    uint4 codes[kChunk];
    uint2 scales[kChunk];
};

// A lane's place in a stripe's tiles: its 16 bytes of codes and 8 of scales in one group. The
// next group is 32 uint4 and 8 uint2 on, so a chunk's loads are one base address and immediate
// offsets (computing each load's address from the group index cost the gate/up kernel's warps
// ~25 instructions a chunk, SASS).
struct LaneTiles {
    const uint4* codes;
    const uint2* scales;

    // Group `group` of the stripe whose tiles start at stripe_codes / stripe_scales.
    __device__ __forceinline__ LaneTiles(const uint4* stripe_codes, const uint2* stripe_scales,
                                         int group)
        : codes(stripe_codes + group * 32 + (threadIdx.x & 31)),
          scales(stripe_scales + group * 8 + ((threadIdx.x & 31) >> 2)) {}
    __device__ __forceinline__ LaneTiles groups_on(int groups) const {
        LaneTiles moved = *this;
        moved.codes += groups * 32;
        moved.scales += groups * 8;
        return moved;
    }
};

// Issues the loads of the first min(kChunk, valid) groups from `at`; returns at once. kWhole:
// the caller knows that every chunk is whole (valid >= kChunk), and the loads go unguarded.
template <bool kWhole = false, int kChunk>
__device__ __forceinline__ void load_chunk(WeightChunk<kChunk>& chunk, const LaneTiles& at,
                                           int valid) {
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
        if (kWhole || u < valid) {
            chunk.codes[u] = load_streaming(at.codes + u * 32);
            chunk.scales[u] = load_streaming(at.scales + u * 8);
        }
    }
}

// Activation rows staged for the mma as bf16 B fragments (stage_rows): per row, per k-tile kt and
// lane t, 8 bytes {x[16 kt + 2t, + 1], x[16 kt + 2t + 8, + 9]}, so that a lane's fragment is
// one 8-byte shared load. Row stride fragment_stride(k) uint2: 32 bytes past the row, so that the
// rows a half-warp reads fall in distinct banks.
__host__ __device__ inline int fragment_stride(int k) { return k / 4 + 4; }

// Where a warp's B fragments come from: token tile j of lane (g, t) reads row min(8 j + g,
// n_tokens - 1) (a lane past the last token repeats it: it fills D columns nobody stores), so
// the loop has no bounds test.
template <int kTokenTiles>
struct StagedB {
    const uint2* row[kTokenTiles];

    __device__ __forceinline__ StagedB(const uint2* staged, int stride, int n_tokens) {
        const int lane = threadIdx.x & 31;
#pragma unroll
        for (int j = 0; j < kTokenTiles; ++j) {
            row[j] = staged + min(8 * j + (lane >> 2), n_tokens - 1) * stride + (lane & 3);
        }
    }
    __device__ __forceinline__ void operator()(int j, int kt, uint32_t (&b)[2]) const {
        const uint2 v = row[j][kt * 4];
        b[0] = v.x;
        b[1] = v.y;
    }
};

// The same fragments read through L1 from rows in global memory (rows too wide to stage): f32
// rows rounded to bf16 at each use, bf16 rows as they are; lanes past the last token take zeros.
template <int kTokenTiles, typename X = float>
struct GlobalB {
    const X* x;
    int k, n_tokens;

    __device__ __forceinline__ void operator()(int j, int kt, uint32_t (&b)[2]) const {
        const int lane = threadIdx.x & 31, token = 8 * j + (lane >> 2);
        b[0] = b[1] = 0u;
        if (token >= n_tokens) return;
        const X* at = x + static_cast<int64_t>(token) * k + 16 * kt + 2 * (lane & 3);
        if constexpr (std::is_same_v<X, __nv_bfloat16>) {
            b[0] = __ldg(reinterpret_cast<const unsigned int*>(at));
            b[1] = __ldg(reinterpret_cast<const unsigned int*>(at + 8));
        } else {
            const float2 low = __ldg(reinterpret_cast<const float2*>(at));
            const float2 high = __ldg(reinterpret_cast<const float2*>(at + 8));
            b[0] = pack_bf16x2(low.x, low.y);
            b[1] = pack_bf16x2(high.x, high.y);
        }
    }
};

// The same fragments from rows staged as they are in memory (bf16, row r at r * row_bytes of
// `staged`; row_bytes = 2k + 16 puts the 8 rows' same columns in distinct banks): ldmatrix hands
// lane 4g + t words t of row g's k-tile halves, which is the B fragment. Up to 8 token rows;
// lanes past the last token read it again (their D columns are stored by no one).
struct RowMajorB {
    unsigned address;  // this lane's row and half at k-tile 0

    __device__ __forceinline__ RowMajorB(const void* staged, int row_bytes, int n_tokens) {
        const int lane = threadIdx.x & 31;
        address =
            shared_address(staged) + min(lane & 7, n_tokens - 1) * row_bytes + (lane >> 3 & 1) * 16;
    }
    __device__ __forceinline__ void operator()(int, int kt, uint32_t (&b)[2]) const {
        load_two_matrices(b, address + kt * 32);
    }
};
__host__ __device__ inline int row_major_bytes(int k) { return 2 * k + 16; }

// The math of one loaded chunk for up to 8 * kTokenTiles token rows, B from `load_b` (kWhole:
// as load_chunk's).
template <int kTokenTiles, bool kWhole = false, int kChunk, class LoadB>
__device__ __forceinline__ void compute_chunk(const WeightChunk<kChunk>& chunk, int group0, int end,
                                              const LoadB& load_b, float (&acc)[kTokenTiles][4]) {
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
        if (kWhole || group0 + u < end) {
            const uint32_t words[4] = {chunk.codes[u].x, chunk.codes[u].y, chunk.codes[u].z,
                                       chunk.codes[u].w};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                uint32_t a[4];
                dequantize_k_tile(words[i], chunk.scales[u], i, a);
                const int kt = (group0 + u) * 4 + i;
#pragma unroll
                for (int j = 0; j < kTokenTiles; ++j) {
                    uint32_t b[2];
                    load_b(j, kt, b);
                    mma_bf16_16x8x16(acc[j], a, b);
                }
            }
        }
    }
}

// One warp's share of a stripe, groups [begin, end) from `at` (group begin): two chunks in turn,
// each loading while the other is multiplied (no register copies between them: a copy waits for
// its loads). `first` was loaded by the caller (before it staged the activations, so that the
// weights' latency and the staging overlap). kWhole: end - begin is a multiple of kChunk.
template <int kTokenTiles, bool kWhole = false, int kChunk, class LoadB>
__device__ __forceinline__ void stripe_partial(WeightChunk<kChunk>& first, LaneTiles at, int begin,
                                               int end, const LoadB& load_b,
                                               float (&acc)[kTokenTiles][4]) {
    WeightChunk<kChunk> second;
    for (int group0 = begin; group0 < end; group0 += 2 * kChunk) {  // `at`: group group0
        if (group0 + kChunk < end) {
            load_chunk<kWhole>(second, at.groups_on(kChunk), end - group0 - kChunk);
        }
        compute_chunk<kTokenTiles, kWhole>(first, group0, end, load_b, acc);
        if (group0 + kChunk >= end) break;
        if (group0 + 2 * kChunk < end) {
            load_chunk<kWhole>(first, at.groups_on(2 * kChunk), end - group0 - 2 * kChunk);
        }
        compute_chunk<kTokenTiles, kWhole>(second, group0 + kChunk, end, load_b, acc);
        at = at.groups_on(2 * kChunk);
    }
}

// Where a warp's stream of chunks stands in stripes_partial: the lane's tiles of the chunk's
// first group, that group and the stripe, stepped on without divisions.
template <int kChunk>
struct ChunkCursor {
    LaneTiles at;
    int group0;
    int stripe;

    // The chunk after this one: kChunk groups on, or the next stripe's group `begin` (stripes
    // are `stripe_groups` groups long).
    __device__ __forceinline__ void advance(int begin, int end, int stripe_groups) {
        group0 += kChunk;
        at = at.groups_on(kChunk);
        if (group0 >= end) {
            at = at.groups_on(stripe_groups - (group0 - begin));
            group0 = begin;
            ++stripe;
        }
    }
    __device__ __forceinline__ bool ends_stripe(int end) const { return group0 + kChunk >= end; }
};

// stripe_partial over n_stripes consecutive stripes of stripe_groups groups (`at`: the first
// one's group `begin`) as one stream of chunks: the next chunk loads while one is multiplied
// also across a stripe's end, so a warp waits for memory once, not once per stripe. Stripe s's
// accumulators go to partial[s][warp] as its last chunk is done. `first` holds the first
// stripe's first chunk, loaded by the caller. kWhole: end - begin is a multiple of kChunk.
template <bool kWhole = false, int kChunk, class LoadB>
__device__ __forceinline__ void stripes_partial(WeightChunk<kChunk>& first, const LaneTiles& at,
                                                int stripe_groups, int n_stripes, int begin,
                                                int end, const LoadB& load_b,
                                                float (*partial)[kWarps][4][32]) {
    const int per_stripe = (end - begin + kChunk - 1) / kChunk, total = n_stripes * per_stripe;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (per_stripe == 0) {  // fewer groups than warps (narrow test models): nothing to add
        for (int stripe = 0; stripe < n_stripes; ++stripe) {
#pragma unroll
            for (int r = 0; r < 4; ++r) partial[stripe][warp][r][lane] = 0.0f;
        }
        return;
    }
    float acc[1][4] = {};
    ChunkCursor<kChunk> now{at, begin, 0};  // the chunk multiplied next
    ChunkCursor<kChunk> next = now;         // the chunk loaded next
    next.advance(begin, end, stripe_groups);
    auto load = [&](WeightChunk<kChunk>& chunk) {
        load_chunk<kWhole>(chunk, next.at, end - next.group0);
        next.advance(begin, end, stripe_groups);
    };
    auto multiply = [&](const WeightChunk<kChunk>& chunk) {
        compute_chunk<1, kWhole>(chunk, now.group0, end, load_b, acc);
        if (now.ends_stripe(end)) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                partial[now.stripe][warp][r][lane] = acc[0][r];
                acc[0][r] = 0.0f;
            }
        }
        now.advance(begin, end, stripe_groups);
    };
    WeightChunk<kChunk> second;
    for (int c = 0; c < total; c += 2) {
        if (c + 1 < total) load(second);
        multiply(first);
        if (c + 1 >= total) break;
        if (c + 2 < total) load(first);
        multiply(second);
    }
}

// Stages `n_rows` activation rows of k floats, row r from row_at(r) (16-byte aligned), into
// shared memory as bf16 B fragments (fragment_stride), then synchronises the CTA. A thread
// issues the loads of kBatch fragments before it converts and stores any of them, so that its
// rows cost one memory latency per kBatch fragments rather than one per fragment (4: a row of
// 4,096 in one; more costs the GEMVs registers, which 2-8 tokens can spare: linear_kernel_for).
template <int kBatch = 4, class RowAt>
__device__ __forceinline__ void stage_rows(uint2* shared, int n_rows, int k, RowAt row_at,
                                           int n_threads = kThreads) {
    const int units = k / 4, stride = fragment_stride(k);  // units: k-tiles x 4 lanes a row
    for (int first = threadIdx.x; first < n_rows * units; first += kBatch * n_threads) {
        // Fragment b of the batch is (r, unit) stepped on from `first` without a division each.
        int r = first / units, unit = first - r * units;
        float2 low[kBatch], high[kBatch];
        int at[kBatch];  // its place in shared memory, -1 past the last row
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            at[b] = -1;
            if (r < n_rows) {
                const float* source = row_at(r) + 16 * (unit / 4) + 2 * (unit % 4);
                low[b] = __ldg(reinterpret_cast<const float2*>(source));
                high[b] = __ldg(reinterpret_cast<const float2*>(source + 8));
                at[b] = r * stride + unit;
            }
            for (unit += n_threads; unit >= units; unit -= units) ++r;
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            if (at[b] >= 0) {
                shared[at[b]] =
                    make_uint2(pack_bf16x2(low[b].x, low[b].y), pack_bf16x2(high[b].x, high[b].y));
            }
        }
    }
    __syncthreads();
}

// One row (a decode step's token, a routed slot's h row): stage_rows without the row
// arithmetic, which costs each thread a division and a loop a fragment (measured: the
// q_proj kernel's warps spent ~45% of their instructions outside the k-tile loop).
template <int kBatch = 4>
__device__ __forceinline__ void stage_row(uint2* shared, const float* x, int k,
                                          int n_threads = kThreads) {
    const int units = k / 4;  // k-tiles x 4 lanes
    for (int first = threadIdx.x; first < units; first += kBatch * n_threads) {
        float2 low[kBatch], high[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int unit = first + b * n_threads;
            if (unit < units) {
                const float* source = x + 16 * (unit / 4) + 2 * (unit % 4);
                low[b] = __ldg(reinterpret_cast<const float2*>(source));
                high[b] = __ldg(reinterpret_cast<const float2*>(source + 8));
            }
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int unit = first + b * n_threads;
            if (unit < units) {
                shared[unit] =
                    make_uint2(pack_bf16x2(low[b].x, low[b].y), pack_bf16x2(high[b].x, high[b].y));
            }
        }
    }
    __syncthreads();
}

// The same for rows x + r x_stride.
template <int kBatch = 4>
__device__ __forceinline__ void stage_rows(uint2* shared, const float* x, int x_stride, int n_rows,
                                           int k, int n_threads = kThreads) {
    stage_rows<kBatch>(
        shared, n_rows, k, [&](int r) { return x + static_cast<int64_t>(r) * x_stride; },
        n_threads);
}

// Stages n_rows rows of k bf16 (each 16-byte aligned, row r from row_at(r): a producer rounded
// them already) into shared memory as stage_rows does, then synchronises the CTA. A thread takes a
// k-tile of a row at a time (two 16-byte loads, two 16-byte stores; the rounding was the
// producer's), kBatch of them in flight. Half the bytes of f32 rows for every CTA to read: H100
// kernel bench, x as bf16 rows against f32 (session 25): the stacked q/k/v at 1 / 8 tokens 7.34
// / 13.57 -> 6.60 / 10.33 us, o_proj 7.68 / 13.0 -> 6.56 / 9.17; f32 rows staged a k-tile a thread
// the same way were slower than f32 fragments (7.20 / 15.0; 8.20 / 14.4): the bytes are the cost,
// not the instructions.
template <int kBatch = 2, class RowAt>
__device__ __forceinline__ void stage_bf16_rows(uint2* shared, int n_rows, int k, RowAt row_at,
                                                int n_threads = kThreads) {
    const int tiles = k / 16, stride = fragment_stride(k);
    for (int first = threadIdx.x; first < n_rows * tiles; first += kBatch * n_threads) {
        uint4 low[kBatch], high[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = first + b * n_threads;
            if (i < n_rows * tiles) {
                const int r = i / tiles, kt = i - r * tiles;
                const uint4* source = reinterpret_cast<const uint4*>(row_at(r)) + 2 * kt;
                low[b] = __ldg(source);
                high[b] = __ldg(source + 1);
            }
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = first + b * n_threads;
            if (i < n_rows * tiles) {
                // Lane t's fragment is {x[2t], x[2t + 1]} of the tile's low half and the same of
                // its high half: word t of each.
                const int r = i / tiles, kt = i - r * tiles;
                uint4* target = reinterpret_cast<uint4*>(shared + r * stride + 4 * kt);
                target[0] = make_uint4(low[b].x, high[b].x, low[b].y, high[b].y);
                target[1] = make_uint4(low[b].z, high[b].z, low[b].w, high[b].w);
            }
        }
    }
    __syncthreads();
}

// The same for n_rows consecutive rows from x.
template <int kBatch = 2>
__device__ __forceinline__ void stage_bf16_rows(uint2* shared, const __nv_bfloat16* x, int n_rows,
                                                int k, int n_threads = kThreads) {
    stage_bf16_rows<kBatch>(
        shared, n_rows, k, [&](int r) { return x + static_cast<int64_t>(r) * k; }, n_threads);
}

// Shared memory for n_rows staged rows of k columns.
inline size_t staged_bytes(int n_rows, int k) {
    return static_cast<size_t>(n_rows) * fragment_stride(k) * sizeof(uint2);
}
// Where element i of a row sits, as a bf16 index, when the row is kept in the B fragments'
// layout (stage_rows' without the padding): unit (k-tile i / 16, lane t) holds x[2t], x[2t + 1],
// then x[2t + 8], x[2t + 9] of its k-tile.
__host__ __device__ inline int fragment_half(int i) {
    const int c = i % 16;
    return ((i / 16 * 4 + (c % 8) / 2) * 2 + c / 8) * 2 + c % 2;
}

// Stages n_rows rows that a kernel wrote in that layout (k bf16 each, 16-byte aligned) into
// shared memory as stage_rows does, then synchronises the CTA: a copy of 16-byte words, half the
// bytes of f32 rows and no rounding, each thread's kBatch loads issued before its stores, by a
// CTA of kCtaThreads.
template <int kCtaThreads = kThreads, int kBatch = 8>
__device__ __forceinline__ void stage_fragment_rows(uint2* shared, const __nv_bfloat16* rows,
                                                    int n_rows, int k) {
    const int words = k / 8, stride = fragment_stride(k) / 2;  // 16-byte words a row
    const uint4* source = reinterpret_cast<const uint4*>(rows);
    uint4* target = reinterpret_cast<uint4*>(shared);
    for (int first = threadIdx.x; first < n_rows * words; first += kBatch * kCtaThreads) {
        uint4 values[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = first + b * kCtaThreads;
            if (i < n_rows * words) values[b] = __ldg(source + i);
        }
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const int i = first + b * kCtaThreads;
            if (i < n_rows * words) target[i / words * stride + i % words] = values[b];
        }
    }
    __syncthreads();
}

// Up to this much the activations are staged, wider ones read through L1 at each use.
inline constexpr size_t kMaxStagedBytes = 48 * 1024;
// Up to 8 tokens (one token tile) up to this much, where two CTAs an SM still fit beside it
// (H100/H200; not a card of ~100 KB of shared memory an SM such as the GB10). H200: o_proj at 4
// tokens 14.8 -> 10.9 us and at 8 tokens 16.1 -> 15.0, the stacked q/k/v at 8 17.0 -> 14.1
// (rows a few bytes over 48 KB: the padding had put them out), q_proj alone (an unstacked
// checkpoint's) at 8 9.6 -> 10.3. Rows of 16 tokens (two tiles) staged so lost: q_proj and the
// stacked q/k/v at 16 went 14.4 -> 26.8 and 20.1 -> 27.3 us, two CTAs an SM instead of three.
inline constexpr size_t kMaxStagedBytesOneTile = 100 * 1024;

inline bool stages_activations(int n_tokens, size_t bytes) {
    if (bytes <= kMaxStagedBytes) return true;
    if (n_tokens > 8 || bytes > kMaxStagedBytesOneTile) return false;
    constexpr size_t kStaticBytes = 8 * 1024;  // the kernel's partial sums, with room to spare
    return 2 * (bytes + kStaticBytes) <= shared_memory_per_sm();
}

// Each warp's accumulators into shared memory, [warp][register][lane].
template <int kTokenTiles>
__device__ __forceinline__ void store_partials(float (*partial)[kTokenTiles * 4][32],
                                               const float (&acc)[kTokenTiles][4]) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < kTokenTiles; ++j) {
#pragma unroll
        for (int c = 0; c < 4; ++c) partial[warp][j * 4 + c][lane] = acc[j][c];
    }
}

// y[token, row] = W x[token] for up to 8 * kTokenTiles tokens (y: the rows' parts); grid = n / 16
// stripes, kStripeWarps warps splitting each stripe's k (launch_linear_block). kStaged: x is
// staged in dynamic shared memory (staged_bytes(n_tokens, k)). kWhole: every warp's share of
// groups is a multiple of kChunk (whole_chunks). kStageBatch: the staging's fragments in flight a
// thread for 2 or more tokens (stage_rows' of f32; stage_bf16_rows' k-tiles, two fragments each,
// of bf16). X: f32 rows, or bf16 rows (stage_bf16_rows). kCluster > 1
// (bf16 rows, 4-8 tokens, staged, whole: linear_in_clusters): clusters of kCluster CTAs, each
// copying its share of the rows into all of theirs at once (copy_to_cluster), which the warps
// read with ldmatrix. kCtaStripes > 1 (linear_in_pairs): that many stripes a CTA, each by its own
// kStripeWarps warps (the same work a warp as with one stripe a CTA, so the same sums), the rows
// staged once for all of them.
template <int kTokenTiles, int kChunk, bool kStaged, int kStripeWarps, bool kWhole = false,
          int kStageBatch = 4, typename X = float, int kCluster = 1, int kCtaStripes = 1>
__global__ void __launch_bounds__(kStripeWarps * 32 * kCtaStripes)
    linear_kernel(TilesView w, const X* x, int n_tokens, RowParts y) {
    constexpr int kStripeThreads = kStripeWarps * 32;
    constexpr int kCtaThreads = kCtaStripes * kStripeThreads;
    static_assert(kCtaStripes == 1 || kCluster == 1, "clusters stage one stripe a CTA");
    extern __shared__ uint2 staged[];
    allow_dependents();
    const int stripe = blockIdx.x * kCtaStripes +
                       (kCtaStripes == 1 ? 0 : static_cast<int>(threadIdx.x) / kStripeThreads);
    const int warp = kCtaStripes == 1 ? threadIdx.x >> 5 : (threadIdx.x >> 5) % kStripeWarps;
    const int groups = w.k / kGroupCols;
    const int begin = warp * groups / kStripeWarps, end = (warp + 1) * groups / kStripeWarps;
    const uint4* codes = w.codes + static_cast<int64_t>(stripe) * groups * 32;
    const uint2* scales = w.scales + static_cast<int64_t>(stripe) * groups * 8;
    const LaneTiles at(codes, scales, begin);
    uint64_t* rows_landed = nullptr;  // kCluster > 1: the rows' bytes in this CTA
    if constexpr (kCluster > 1) {
        rows_landed = cta_copy_barrier();
        if (threadIdx.x == 0) init_copy_barrier(rows_landed);
        cluster_arrive();  // the barriers exist before any CTA's copies land in them
    }
    WeightChunk<kChunk> first;
    load_chunk<kWhole>(first, at, end - begin);     // weights: no kernel writes them
    wait_for_prerequisites();                       // x and y: the previous kernels' business
    float acc[kTokenTiles][4] = {};
    if constexpr (kCluster > 1) {
        static_assert(kStaged && kWhole && kTokenTiles == 1 && std::is_same_v<X, __nv_bfloat16>);
        cluster_wait();
        const int row_bytes = row_major_bytes(w.k);
        if (threadIdx.x == 0) {
            expect_bytes(rows_landed, static_cast<unsigned>(n_tokens * 2 * w.k));
            for (int r = static_cast<int>(cluster_rank()); r < n_tokens; r += kCluster) {
                copy_to_cluster(reinterpret_cast<char*>(staged) + r * row_bytes,
                                x + static_cast<int64_t>(r) * w.k, 2 * w.k, rows_landed,
                                (1u << kCluster) - 1);
            }
        }
        wait_first_phase(rows_landed);
        cluster_arrive();  // every row has landed here: the cluster's copies into us are done
        const RowMajorB b(staged, row_bytes, n_tokens);
        stripe_partial<1, kWhole>(first, at, begin, end, b, acc);
    } else if constexpr (kStaged) {
        if constexpr (std::is_same_v<X, __nv_bfloat16>) {
            stage_bf16_rows<kStageBatch / 2>(staged, x, n_tokens, w.k, kCtaThreads);
        } else if (n_tokens == 1) {
            stage_row(staged, x, w.k, kCtaThreads);
        } else {
            stage_rows<kStageBatch>(staged, x, w.k, n_tokens, w.k, kCtaThreads);
        }
        const StagedB<kTokenTiles> b(staged, fragment_stride(w.k), n_tokens);
        stripe_partial<kTokenTiles, kWhole>(first, at, begin, end, b, acc);
    } else {
        const GlobalB<kTokenTiles, X> b{x, w.k, n_tokens};
        stripe_partial<kTokenTiles, kWhole>(first, at, begin, end, b, acc);
    }
    // [stripe of the CTA, warp of the stripe] as one index: store_partials' warp.
    __shared__ float partial[kCtaStripes * kStripeWarps][kTokenTiles * 4][32];
    store_partials<kTokenTiles>(partial, acc);
    __syncthreads();
    constexpr int kStripeSums = kTokenTiles * 4 * 32;
    for (int index = threadIdx.x; index < kCtaStripes * kStripeSums; index += kCtaThreads) {
        const int s = kCtaStripes == 1 ? 0 : index / kStripeSums;
        const int in_stripe = kCtaStripes == 1 ? index : index % kStripeSums;
        const int reg = in_stripe / 32, lane = in_stripe % 32, j = reg / 4, c = reg % 4;
        float sum = 0.0f;
#pragma unroll
        for (int v = 0; v < kStripeWarps; ++v) sum += partial[s * kStripeWarps + v][reg][lane];
        const int row = (blockIdx.x * kCtaStripes + s) * 16 + (lane >> 2) + (c >= 2 ? 8 : 0);
        const int token = 8 * j + 2 * (lane & 3) + (c & 1);
        if (token < n_tokens) y.store(token, row, sum);
    }
    // No CTA leaves while a copy it issued may still be landing in another.
    if constexpr (kCluster > 1) cluster_wait();
}

// Experts of one MoE layer, tiled and stacked: gate and up fused so that stripe s holds gate
// rows 8s..8s+7 (fragment rows g) and up rows 8s..8s+7 (rows g + 8), so each lane holds a gate
// and its up; down as is. out_scales [expert][3] = gate, up, down global scales x 2^19.
struct ExpertsView {
    const uint4* gate_up_codes;
    const uint2* gate_up_scales;
    const uint4* down_codes;
    const uint2* down_scales;
    const float* out_scales;
    int hidden;
    int intermediate;
};

// Stripes of one expert matrix per CTA in the decode gate/up: the slot's expert id and h row are
// read once for all of them, and the grid is about one wave instead of four.
inline constexpr int kGateUpStripes = 4;

// mid[p, i] = silu(gate_e h[p / top_k])_i * (up_e h[p / top_k])_i, e = ids[p], one routed
// slot p per grid row, kGateUpStripes stripes per CTA; grid = (2 intermediate / 16 /
// kGateUpStripes rounded up, n_tokens * top_k); the slot's h row (X: f32, or bf16 as a producer
// rounded it) staged in shared memory (staged_bytes(1, hidden)). mid's rows are bf16 in the B
// fragments' layout (fragment_half): the down kernel multiplies them rounded so, and copies them as
// they are. Three CTAs an SM (80 registers with chunks of 4, 75 with 3, no spills; unbounded, ptxas
// took 112 and two).
template <int kChunk, bool kWhole, typename X>
__global__ void __launch_bounds__(kThreads, 3)
    moe_gate_up_kernel(ExpertsView experts, const int32_t* ids, const X* h, int top_k,
                       __nv_bfloat16* mid) {
    extern __shared__ uint2 staged[];
    __shared__ float partial[kGateUpStripes][kWarps][4][32];
    const int slot = blockIdx.y, warp = threadIdx.x >> 5;
    const int stripes = 2 * experts.intermediate / 16, stripe0 = blockIdx.x * kGateUpStripes;
    const int n_stripes = min(kGateUpStripes, stripes - stripe0);
    const int expert = ids[slot];
    const int groups = experts.hidden / kGroupCols;
    const int begin = warp * groups / kWarps, end = (warp + 1) * groups / kWarps;
    const int64_t tile = static_cast<int64_t>(expert) * stripes + stripe0;
    const uint4* codes = experts.gate_up_codes + tile * groups * 32;
    const uint2* scales = experts.gate_up_scales + tile * groups * 8;
    const LaneTiles at(codes, scales, begin);
    WeightChunk<kChunk> first;
    load_chunk<kWhole>(first, at, end - begin);
    const X* row = h + static_cast<int64_t>(slot / top_k) * experts.hidden;
    if constexpr (std::is_same_v<X, __nv_bfloat16>) {
        stage_bf16_rows(staged, row, 1, experts.hidden);
    } else {
        stage_row(staged, row, experts.hidden);
    }
    stripes_partial<kWhole>(first, at, groups, n_stripes, begin, end,
                            StagedB<1>(staged, fragment_stride(experts.hidden), 1), partial);
    __syncthreads();
    if (threadIdx.x < 8 * n_stripes) {
        // Token column 0 lives in lanes t = 0: lane 4g holds gate row g (d0) and up row g (d2).
        const int s = threadIdx.x / 8, g = threadIdx.x % 8;
        float gate = 0.0f, up = 0.0f;
#pragma unroll
        for (int v = 0; v < kWarps; ++v) {
            gate += partial[s][v][0][4 * g];
            up += partial[s][v][2][4 * g];
        }
        gate *= experts.out_scales[expert * 3 + 0];
        up *= experts.out_scales[expert * 3 + 1];
        mid[static_cast<int64_t>(slot) * experts.intermediate +
            fragment_half((stripe0 + s) * 8 + g)] =
            __float2bfloat16_rn(gate / (1.0f + expf(-gate)) * up);
    }
}

// out[t, row] = sum_j weights[t, j] (down_e mid[t top_k + j])_row, e = ids[t, j], in slot
// order; top_k <= 8. Each CTA takes kCtaSlots of a token's slots, warp j one slot over the whole
// intermediate width, its mid rows staged (staged_bytes(kCtaSlots, intermediate)). With 8, one
// CTA a (stripe, token): grid = (hidden / 16, n_tokens). With 4, a pair of CTAs (launched as a
// cluster of 2; grid = (2 hidden / 16, n_tokens), blockIdx.x = 2 stripe + h) takes slots
// 4h .. 4h + 3; CTA 1 hands its slots' sums to CTA 0 through distributed shared memory, and CTA
// 0 adds all of them in slot order, as the one CTA does: the same sums bitwise. M2's 192 stripes
// as one CTA each leave 60 of 132 SMs with two CTAs' bytes and the others with one; pairs even
// that out (launch_moe says where they pay).
template <int kChunk, bool kWhole, int kCtaSlots>
__global__ void __launch_bounds__(kCtaSlots * 32)
    moe_down_kernel(ExpertsView experts, const int32_t* ids, const float* weights,
                    const __nv_bfloat16* mid, int top_k, float* out) {
    constexpr bool kPair = kCtaSlots < 8;
    extern __shared__ __align__(16) uint2 staged[];
    const int half = kPair ? blockIdx.x & 1 : 0, stripe = kPair ? blockIdx.x >> 1 : blockIdx.x;
    const int token = blockIdx.y, warp = threadIdx.x >> 5, first_slot = half * kCtaSlots;
    const int rows = max(0, min(kCtaSlots, top_k - first_slot));  // this CTA's slots
    const int groups = experts.intermediate / kGroupCols;
    const int64_t stripes = experts.hidden / 16;
    const bool active = warp < rows;
    // A pair's CTA 1 may write into CTA 0's shared memory only once CTA 0 is known to have
    // started (the CUDA guide's rule for distributed shared memory): each CTA arrives here,
    // relaxed since it publishes nothing, and waits for the other before the hand-over.
    if constexpr (kPair) asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
    const int64_t tile =
        active ? static_cast<int64_t>(ids[token * top_k + first_slot + warp]) * stripes + stripe
               : 0;
    const LaneTiles at(experts.down_codes + tile * groups * 32,
                       experts.down_scales + tile * groups * 8, 0);
    WeightChunk<kChunk> first;
    if (active) load_chunk<kWhole>(first, at, groups);
    const int stride = fragment_stride(experts.intermediate);
    // M2's rows of 1,536 are 6 words a thread (a warp a row): one round of loads.
    stage_fragment_rows<kCtaSlots * 32>(
        staged, mid + (static_cast<int64_t>(token) * top_k + first_slot) * experts.intermediate,
        rows, experts.intermediate);
    float acc[1][4] = {};
    if (active) {
        // One token: every lane's B fragments come from the warp's own slot row.
        const StagedB<1> slot_row(staged + warp * stride, 0, 1);
        stripe_partial<1, kWhole>(first, at, 0, groups, slot_row, acc);
    }
    __shared__ float partial[kCtaSlots][4][32];
    __shared__ float handed[kPair ? kCtaSlots : 1][16];  // CTA 0 of a pair: CTA 1's slots' sums
    store_partials<1>(partial, acc);
    __syncthreads();
    if constexpr (kPair) {
        cooperative_groups::cluster_group pair = cooperative_groups::this_cluster();
        asm volatile("barrier.cluster.wait.aligned;" ::: "memory");  // both CTAs have started
        if (half == 1 && static_cast<int>(threadIdx.x) < rows * 16) {
            const int j = threadIdx.x / 16, row = threadIdx.x % 16;
            float* target = pair.map_shared_rank(&handed[0][0], 0);
            target[j * 16 + row] = partial[j][row < 8 ? 0 : 2][4 * (row % 8)];
        }
        pair.sync();  // CTA 1's sums are in CTA 0's shared memory
        if (half == 1) return;
    }
    if (threadIdx.x < 16) {
        const int row = threadIdx.x, lane = 4 * (row % 8), reg = row < 8 ? 0 : 2;
        float sum = 0.0f;
        for (int j = 0; j < top_k; ++j) {
            const int slot = token * top_k + j;
            const float value = j < kCtaSlots ? partial[j][reg][lane] : handed[j - kCtaSlots][row];
            sum += weights[slot] * experts.out_scales[ids[slot] * 3 + 2] * value;
        }
        out[static_cast<int64_t>(token) * experts.hidden + stripe * 16 + row] = sum;
    }
}

// Launches `kernel` in clusters of `cluster` CTAs along x (1: none; grid.x a multiple of it),
// with programmatic dependent launch allowed where `pdl` (see allow_dependents).
template <typename... Parameters, typename... Arguments>
inline cudaError_t launch_kernel(int cluster, bool pdl, void (*kernel)(Parameters...), dim3 grid,
                                 int threads, size_t shared_bytes, cudaStream_t stream,
                                 Arguments&&... arguments) {
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = dim3(threads);
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream;
    cudaLaunchAttribute attributes[2];
    int count = 0;
    if (pdl) {
        attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attributes[count++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 1) {
        attributes[count].id = cudaLaunchAttributeClusterDimension;
        attributes[count].val.clusterDim.x = cluster;
        attributes[count].val.clusterDim.y = attributes[count].val.clusterDim.z = 1;
        ++count;
    }
    config.attrs = attributes;
    config.numAttrs = count;
    return cudaLaunchKernelEx(&config, kernel, std::forward<Arguments>(arguments)...);
}

// Launches `kernel` with programmatic dependent launch allowed (see allow_dependents).
template <typename... Parameters, typename... Arguments>
inline cudaError_t launch_with_pdl(void (*kernel)(Parameters...), dim3 grid, int threads,
                                   size_t shared_bytes, cudaStream_t stream,
                                   Arguments&&... arguments) {
    return launch_kernel(1, true, kernel, grid, threads, shared_bytes, stream,
                         std::forward<Arguments>(arguments)...);
}

// Launches moe_down_kernel with kCtaSlots slots a CTA (a cluster of 2 CTAs a stripe below 8).
template <int kChunk, bool kWhole, int kCtaSlots>
inline cudaError_t launch_down(const ExpertsView& experts, const int32_t* ids, const float* weights,
                               const __nv_bfloat16* mid, int n_tokens, int top_k, float* out,
                               cudaStream_t stream) {
    const auto kernel = moe_down_kernel<kChunk, kWhole, kCtaSlots>;
    const size_t bytes = staged_bytes(kCtaSlots, experts.intermediate);
    const cudaError_t status = opt_in_shared_memory(kernel, bytes);
    if (status != cudaSuccess) return status;
    constexpr int kCtas = kCtaSlots < 8 ? 2 : 1;
    return launch_kernel(kCtas, false, kernel, dim3(kCtas * experts.hidden / 16, n_tokens),
                         kCtaSlots * 32, bytes, stream, experts, ids, weights, mid, top_k, out);
}

// The production configuration (bench/cuda_kernels_bench.cu sweeps the chunk).
inline constexpr int kProductionChunk = 4;

template <typename X>
using LinearKernel = void (*)(TilesView, const X*, int, RowParts);

// Whether each of `warps` warps splitting k columns takes the same number of groups, a multiple
// of kChunk: then no chunk is partial and the kernels' loops go unguarded (kWhole).
template <int kChunk>
inline bool whole_chunks(int k, int warps) {
    const int groups = k / kGroupCols;
    return groups % warps == 0 && groups / warps % kChunk == 0;
}

// The linear kernel for m tokens with kStripeWarps warps a stripe; `whole` (whole_chunks) picks
// the unguarded form of a staged kernel, the decode's (the unstaged ones keep their guards, so
// that twice as many of them need not be compiled).
// The decode's 2-8 tokens stage with 8 fragments a thread in flight, half the rounds of 4 (H100,
// in the decode graph at 8 tokens: q/k/v 16.2 -> 15.35 us, o 15.1 -> 14.1). Not one token: its
// kernel does not stage that way, and compiled with the 8-fragment loop (80 registers instead of
// 73) it ran q_proj at 5.8 us instead of 5.4 (H200 kernel bench). The rest of the 8-token cost
// is likely L2 bandwidth (not measured apart): every CTA reads all 8 rows (q/k/v: 512 x 96 KB,
// 50 MB a call).
// bf16 rows the same way: 2-8 tokens stage four k-tiles a thread in flight (8 fragments),
// one token two (stage_bf16_rows; the stacked q/k/v in M2's decode graph at 4 / 8 tokens 9.27 /
// 11.69 -> 9.02 / 11.00 us, H200; 80 registers, still four 6-warp CTAs an SM).
template <int kChunk, int kStripeWarps, typename X = float>
LinearKernel<X> linear_kernel_for(int m, bool staged, bool whole) {
    if (staged && whole) {
        return m == 1   ? linear_kernel<1, kChunk, true, kStripeWarps, true, 4, X>
               : m <= 8 ? linear_kernel<1, kChunk, true, kStripeWarps, true, 8, X>
                        : linear_kernel<2, kChunk, true, kStripeWarps, true, 4, X>;
    }
    return m <= 8 ? (staged ? linear_kernel<1, kChunk, true, kStripeWarps, false, 4, X>
                            : linear_kernel<1, kChunk, false, kStripeWarps, false, 4, X>)
                  : (staged ? linear_kernel<2, kChunk, true, kStripeWarps, false, 4, X>
                            : linear_kernel<2, kChunk, false, kStripeWarps, false, 4, X>);
}

// How many CTAs of `kernel` (`threads` each) the card holds at once; 0 if the runtime cannot say.
template <typename X>
inline int resident_ctas(LinearKernel<X> kernel, int threads, size_t shared_bytes) {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, shared_bytes) !=
        cudaSuccess) {
        return 0;
    }
    return per_sm * current_device_attribute(cudaDevAttrMultiProcessorCount);
}

// The CTAs a cluster in the decode GEMVs that copy their bf16 rows to each other
// (linear_kernel's kCluster), on Hopper: four, where 8-warp CTAs a stripe fit in one wave. In
// the decode graph at 8 / 4 tokens (H200, one call, bench/results/cuda_model.md, session 29),
// o_proj (192 CTAs; a wave holds 264 at 8 tokens, 396 at 4) took 8.62 / 7.75 us in clusters of
// four against 10.14 / 7.95. The stacked q/k/v, whose 512 stripes need 6-warp CTAs to fit a
// wave (528 of them), took 12.18 / 11.88 against 11.67 / 9.19, and 10.85 / 10.21 in clusters of
// two (presumably as whole clusters must find room at once in a card nearly full): it stages
// CTA by CTA. Below 4 tokens the rows are 6-24 KB and the clusters' barriers cost more than they
// save (o_proj at one token 7.44 against 6.52 in the graph; at two 8.06 against 7.79 in the
// kernel bench, whose 4 tokens gained 9.10 -> 8.72 as the graph's did).
inline constexpr int kLinearCluster = 4;

inline bool linear_in_clusters(int m, int stripes, int resident, const void* x) {
    static const bool hopper = current_device_attribute(cudaDevAttrComputeCapabilityMajor) == 9;
    return hopper && m >= 4 && m <= 8 && stripes % kLinearCluster == 0 && stripes <= resident &&
           reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

// A linear kernel with its warps a stripe and the CTAs of it the card holds at once.
template <typename X>
struct StripeKernel {
    LinearKernel<X> kernel;
    int warps;
    int resident;
};

// The kernel for m tokens of x, 8 warps a stripe, or 6 where 8-warp CTAs would take more than one
// wave of the card and 6-warp ones fit in one: the stacked q/k/v's 512 stripes took two waves of
// 8-warp CTAs (three an SM at 80 registers, 396 on 132 SMs), the last 116 running alone for ~3.5
// us of the ~9 (H200, CTA clocks), where 6-warp CTAs fit four an SM.
template <int kChunk, typename X>
inline cudaError_t stripe_kernel(int m, int stripes, int k, bool staged, size_t shared_bytes,
                                 StripeKernel<X>& chosen) {
    chosen = {linear_kernel_for<kChunk, kWarps, X>(m, staged, whole_chunks<kChunk>(k, kWarps)),
              kWarps, 0};
    cudaError_t status = opt_in_shared_memory(chosen.kernel, shared_bytes);
    if (status != cudaSuccess) return status;
    chosen.resident = resident_ctas(chosen.kernel, kThreads, shared_bytes);
    if (stripes <= chosen.resident) return cudaSuccess;
    const LinearKernel<X> kernel6 =
        linear_kernel_for<kChunk, 6, X>(m, staged, whole_chunks<kChunk>(k, 6));
    status = opt_in_shared_memory(kernel6, shared_bytes);
    const int resident6 = status == cudaSuccess ? resident_ctas(kernel6, 6 * 32, shared_bytes) : 0;
    if (stripes <= resident6) chosen = {kernel6, 6, resident6};
    return status;
}

// Two stripes a CTA (linear_kernel's kCtaStripes), each by the warps it has alone, so that each
// sums as it would alone and the rows are staged once for both, where the pairs fit one wave of
// the card; nullptr where not. Up to 8 tokens the stacked q/k/v's 6-warp stripes in 12-warp CTAs,
// bf16 rows (half the staging's L2 reads with the same warps on the card, two CTAs an SM instead
// of four). Decode graph, H200, one call (bench/results/cuda_model.md, session 31): 1 / 4 / 8
// tokens 7.79-7.83 / 9.04-9.05 / 11.01-11.03 -> 7.69-7.74 / 8.32-8.33 / 9.02-9.04 us. At 9-16
// tokens (two token tiles, rows of up to ~97 KB at k = 3,072 and ~197 KB at 6,144), which one
// stripe a CTA reads through L1 (staged they took two waves), any matrix in pairs of its one-token
// kernel's warps a stripe (`warps`), so that a token sums as it does alone (a speculative
// verification, a batch), and f32 rows as bf16 rows (the same sums): at 16 tokens the stacked
// q/k/v (6 warps) 20.4 -> 13.0 us, o_proj (8 warps) 18.1 -> 12.0 (13.9 in 6-warp pairs).
template <int kChunk, typename X>
inline LinearKernel<X> linear_in_pairs(int m, int stripes, int k, int warps, size_t shared_bytes) {
    if (stripes % 2 != 0 || !whole_chunks<kChunk>(k, warps)) return nullptr;
    LinearKernel<X> paired = nullptr;
    if constexpr (std::is_same_v<X, __nv_bfloat16>) {  // f32 rows up to 8 tokens: one a CTA
        if (m == 1 && warps == 6) paired = linear_kernel<1, kChunk, true, 6, true, 4, X, 1, 2>;
        if (m > 1 && m <= 8 && warps == 6) {
            paired = linear_kernel<1, kChunk, true, 6, true, 8, X, 1, 2>;
        }
    }
    if (m > 8 && warps == 6) paired = linear_kernel<2, kChunk, true, 6, true, 8, X, 1, 2>;
    if (m > 8 && warps == 8) paired = linear_kernel<2, kChunk, true, 8, true, 8, X, 1, 2>;
    if (paired == nullptr || opt_in_shared_memory(paired, shared_bytes) != cudaSuccess) {
        return nullptr;
    }
    return stripes / 2 <= resident_ctas(paired, 2 * warps * 32, shared_bytes) ? paired : nullptr;
}

// y = W x for up to 16 tokens (kChunk groups in flight per warp), x f32 or bf16 rows: x staged
// in shared memory when it fits, else read through L1, one stripe a CTA (stripe_kernel), two
// (linear_in_pairs), or 8-warp CTAs in clusters (linear_in_clusters) where those pay. kPdl:
// launched so that its weight loads overlap the tail of the previous kernel.
template <int kChunk, bool kPdl, typename X>
inline cudaError_t launch_linear_block(const TilesView& w, const X* x, int m, const RowParts& y,
                                       cudaStream_t stream) {
    const size_t bytes = staged_bytes(m, w.k);
    const bool staged = stages_activations(m, bytes);
    const size_t shared_bytes = staged ? bytes : 0;
    const int stripes = w.n / 16;
    StripeKernel<X> chosen;
    cudaError_t status = stripe_kernel<kChunk, X>(m, stripes, w.k, staged, shared_bytes, chosen);
    if (status != cudaSuccess) return status;
    if constexpr (kPdl) {
        int pair_warps = 0;  // the pairs' warps a stripe; 0: no pairs
        if (m <= 8) {
            pair_warps = staged && chosen.warps == 6 ? 6 : 0;
        } else {
            const size_t one_bytes = staged_bytes(1, w.k);
            const bool one_staged = stages_activations(1, one_bytes);
            StripeKernel<X> one;
            status = stripe_kernel<kChunk, X>(1, stripes, w.k, one_staged,
                                              one_staged ? one_bytes : 0, one);
            if (status != cudaSuccess) return status;
            pair_warps = one.warps;
        }
        if (const LinearKernel<X> paired =
                pair_warps == 0 ? nullptr
                                : linear_in_pairs<kChunk, X>(m, stripes, w.k, pair_warps, bytes)) {
            return launch_with_pdl(paired, dim3(stripes / 2), 2 * pair_warps * 32, bytes, stream, w,
                                   x, m, y);
        }
    }
    if constexpr (kPdl && std::is_same_v<X, __nv_bfloat16>) {
        if (chosen.warps == kWarps && staged && whole_chunks<kChunk>(w.k, kWarps) &&
            linear_in_clusters(m, stripes, chosen.resident, x)) {
            const auto clustered =
                linear_kernel<1, kChunk, true, kWarps, true, 4, X, kLinearCluster>;
            status = opt_in_shared_memory(clustered, shared_bytes);
            if (status != cudaSuccess) return status;
            return launch_kernel(kLinearCluster, true, clustered, dim3(stripes), kThreads,
                                 shared_bytes, stream, w, x, m, y);
        }
    }
    if constexpr (kPdl) {
        return launch_with_pdl(chosen.kernel, dim3(stripes), chosen.warps * 32, shared_bytes,
                               stream, w, x, m, y);
    } else {
        chosen.kernel<<<stripes, chosen.warps * 32, shared_bytes, stream>>>(w, x, m, y);
        return cudaSuccess;
    }
}

// y = W x for any number of tokens, 16 at a time (each block of 16 re-reads W: a decode kernel,
// not a prefill GEMM).
template <typename X>
inline cudaError_t launch_linear(const TilesView& w, const X* x, int n_tokens, const RowParts& y,
                                 cudaStream_t stream) {
    for (int t0 = 0; t0 < n_tokens; t0 += 16) {
        const int m = n_tokens - t0 < 16 ? n_tokens - t0 : 16;
        // Grids smaller than the card (k/v_proj: 64 stripes) gain nothing from overlapping the
        // previous kernel's tail and lose the launch attribute's cost; their warps have few
        // groups, so all of them go in flight at once (bench/results/cuda_kernels.md,
        // 41cec71: k/v 5.9 us with PDL and chunks of 4, 4.2-4.3 us without or with 8).
        const bool small_grid = w.n / 16 < 128;
        const X* block_x = x + static_cast<int64_t>(t0) * w.k;
        const RowParts block_y = y.after_tokens(t0);
        const cudaError_t status =
            small_grid
                ? launch_linear_block<8, false>(w, block_x, m, block_y, stream)
                : launch_linear_block<kProductionChunk, true>(w, block_x, m, block_y, stream);
        if (status != cudaSuccess) return status;
    }
    return cudaSuccess;
}

// The gate/up kernel in chunks of kChunk for a hidden width, unguarded where they are whole.
template <int kChunk, typename X>
inline auto gate_up_kernel_for(int hidden) {
    return whole_chunks<kChunk>(hidden, kWarps) ? moe_gate_up_kernel<kChunk, true, X>
                                                : moe_gate_up_kernel<kChunk, false, X>;
}

// The MoE experts of n_tokens tokens, top_k <= 8 slots each, h f32 or bf16 rows: gate/up +
// SiLU into `mid` ([n_tokens top_k, intermediate] bf16, moe_gate_up_kernel's layout), then down
// + the routed sum into `out`.
template <typename X>
inline cudaError_t launch_moe(const ExpertsView& experts, const int32_t* ids, const float* weights,
                              const X* h, int n_tokens, int top_k, __nv_bfloat16* mid, float* out,
                              cudaStream_t stream) {
    const size_t gate_up_bytes = staged_bytes(1, experts.hidden);
    // Chunks that split a warp's share of a gate/up stripe evenly: M2's hidden 3,072 gives each
    // warp 6 groups, which chunks of 4 cut into 4 + 2 (half of the second chunk's loads and
    // products skipped behind guards). H200, A/B in one call: the experts at 1 / 4 tokens went
    // 26.9 / 83.7 -> 25.9 / 81.5 us with chunks of 3, and 26.0 / 81.2 -> 25.2 / 80.0 us more
    // with the guards compiled out where every chunk is whole (whole_chunks). Chunks of 3 only
    // where they are whole: elsewhere they split nothing evenly either.
    const auto gate_up = whole_chunks<3>(experts.hidden, kWarps)
                             ? moe_gate_up_kernel<3, true, X>
                             : gate_up_kernel_for<kProductionChunk, X>(experts.hidden);
    cudaError_t status = opt_in_shared_memory(gate_up, gate_up_bytes);
    if (status != cudaSuccess) return status;
    const int gate_up_stripes = 2 * experts.intermediate / 16;
    const dim3 gate_up_grid((gate_up_stripes + kGateUpStripes - 1) / kGateUpStripes,
                            n_tokens * top_k);
    gate_up<<<gate_up_grid, kThreads, gate_up_bytes, stream>>>(experts, ids, h, top_k, mid);
    // The down kernel's warps take the whole intermediate width each; CTA pairs from 2 tokens
    // on. One CTA a stripe at one token, where the pair's cluster barrier costs about what its
    // balance gains (in the decode graph, A/B in one call each: H200 10.08 -> 9.77 us, H100
    // 11.57 -> 11.91), and pairs at 8 tokens (H200 55.8 -> 51.7 us, H100 67.3 -> 65.2).
    const bool whole = whole_chunks<kProductionChunk>(experts.intermediate, 1);
    if (n_tokens == 1) {
        status = whole ? launch_down<kProductionChunk, true, 8>(experts, ids, weights, mid,
                                                                n_tokens, top_k, out, stream)
                       : launch_down<kProductionChunk, false, 8>(experts, ids, weights, mid,
                                                                 n_tokens, top_k, out, stream);
    } else {
        status = whole ? launch_down<kProductionChunk, true, 4>(experts, ids, weights, mid,
                                                                n_tokens, top_k, out, stream)
                       : launch_down<kProductionChunk, false, 4>(experts, ids, weights, mid,
                                                                 n_tokens, top_k, out, stream);
    }
    return status;
}

}  // namespace fourbit::cuda::nvfp4
