// The online softmax of the tiled prefill attention kernels (attention_prefill_cuda.cu on
// mma.sync, attention_prefill_wgmma_cuda.cu on wgmma), and how they find a tile's runs and walk
// them, written once: a warp's rows are one m16 tile of one query head, its scores and outputs
// the m16n8 accumulators (lane 4g + t: rows g and g + 8, columns 8j + 2t and + 1), which both
// instructions produce.
#pragma once

#include <climits>

#include "ops/attention_prefill_cuda.cuh"

namespace fourbit::cuda::paged_attention {

// A warp's rows: one m16 tile; lane 4g + t holds rows g and g + 8, its lane rows 0 and 1.
constexpr int kRowTiles = 1;
constexpr int kLaneRows = 2 * kRowTiles;

// A lane's rows of its warp's head over one walk. Maxima are kept in base 2 (scores x scale x
// log2 e), so that each weight is one exp2.
struct RowState {
    float out[kRowTiles][kPrefillDim / 8][4];  // 16 dimension tiles of m16n8 accumulators
    float max[kLaneRows];  // each row's running maximum (the same in its 4 lanes)
    float sum[kLaneRows];  // this lane's share of each row's running sum
};

// What a warp needs to walk a run: its rows' positions (a row sees positions <= its position; -1:
// not this run's row) and the smallest of them (tiles wholly before it need no mask).
struct WalkRows {
    int position[kLaneRows];
    int min_position;
    float scale_log2;
};

// A warp's rows over a run, tile tokens [begin, end): its lane rows are tile tokens row0 + 8r + g
// (lane 4g + t); those outside the run are -1.
__device__ __forceinline__ WalkRows walk_rows(const AttentionParams& p, const int* position,
                                              int row0, int begin, int end) {
    const int g = (threadIdx.x & 31) >> 2;
    WalkRows rows;
    int min_position = INT_MAX;
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) {
        const int token = row0 + 8 * r + g;
        rows.position[r] = token >= begin && token < end ? position[token] : -1;
        min_position = min(min_position, rows.position[r]);
    }
    rows.min_position = __reduce_min_sync(~0u, min_position);
    rows.scale_log2 = p.scale * 1.4426950408889634f;  // log2 e
    return rows;
}

// What a run of the tile's tokens [begin, end) walks in this split (grid z): positions [begin,
// end) of the sequence whose block table is `table`, up to its last token's, in `tiles` tiles of
// kPositions.
struct RunWalk {
    const int32_t* table;
    int begin;
    int end;
    int tiles;
};
template <int kPositions>
__device__ __forceinline__ RunWalk run_walk(const AttentionParams& p, const int* position,
                                            int first, int begin, int end) {
    RunWalk w;
    w.table = p.tables + p.table_offsets[first + begin];
    w.begin = static_cast<int>(blockIdx.z) * p.split;
    w.end = min(w.begin + p.split, position[end - 1] + 1);
    w.tiles = w.end > w.begin ? (w.end - w.begin + kPositions - 1) / kPositions : 0;
    return w;
}

// A warp's scores of one tile of kPositions: m16 tile m, 8 positions nt, the m16n8 accumulator.
template <int kPositions>
using TileScores = float[kRowTiles][kPositions / 8][4];

__device__ __forceinline__ void start_rows(RowState& state) {
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) {
        state.max[r] = -INFINITY;
        state.sum[r] = 0.0f;
    }
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
#pragma unroll
        for (int dt = 0; dt < kPrefillDim / 8; ++dt) {
#pragma unroll
            for (int c = 0; c < 4; ++c) state.out[m][dt][c] = 0.0f;
        }
    }
}

// Calls f(score, lane row r, its position in the tile) for each of a lane's scores of a tile.
template <int kPositions, class F>
__device__ __forceinline__ void for_each_score(TileScores<kPositions>& score, F f) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
#pragma unroll
        for (int nt = 0; nt < kPositions / 8; ++nt) {
#pragma unroll
            for (int c = 0; c < 4; ++c)
                f(score[m][nt][c], 2 * m + (c >> 1), 8 * nt + 2 * t + (c & 1));
        }
    }
}

// The causal mask and the online softmax of one tile's scores: they become the tile's weights,
// and the row state (maxima, sums, outputs so far) is rescaled to the new maxima. The maxima are
// taken on the raw scores (x -> x scale_log2 is monotonic, also rounded) and each weight is one
// exp2 of an fma; the mask's compares run only on tiles that reach past a row's position.
template <int kPositions>
__device__ __forceinline__ void softmax_tile(TileScores<kPositions>& score, int tile0,
                                             const WalkRows& rows, RowState& state) {
    float tile_max[kLaneRows];
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) tile_max[r] = -INFINITY;
    if (tile0 + kPositions - 1 > rows.min_position) {  // the same in the warp
        for_each_score<kPositions>(score, [&](float& value, int r, int column) {
            if (tile0 + column > rows.position[r]) value = -INFINITY;
            tile_max[r] = fmaxf(tile_max[r], value);
        });
    } else {
        for_each_score<kPositions>(
            score, [&](float& value, int r, int) { tile_max[r] = fmaxf(tile_max[r], value); });
    }
    float base[kLaneRows], factor[kLaneRows];
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) {
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(~0u, tile_max[r], 1));
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(~0u, tile_max[r], 2));
        const float new_max = fmaxf(state.max[r], tile_max[r] * rows.scale_log2);
        // A row that has seen nothing yet (a split before its position): weights and factor 0.
        base[r] = new_max == -INFINITY ? 0.0f : new_max;
        factor[r] = exp2f(state.max[r] - base[r]);  // 0 on the row's first visible tile
        state.max[r] = new_max;
    }
    float sum[kLaneRows] = {};
    for_each_score<kPositions>(score, [&](float& value, int r, int) {
        value = exp2f(fmaf(value, rows.scale_log2, -base[r]));
        sum[r] += value;
    });
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) state.sum[r] = state.sum[r] * factor[r] + sum[r];
    // Most tiles past the first few move no row's maximum: x 1 is exact, so skip it.
    bool moved = false;
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) moved |= factor[r] != 1.0f;
    if (!__any_sync(~0u, moved)) return;
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
#pragma unroll
        for (int dt = 0; dt < kPrefillDim / 8; ++dt) {
            state.out[m][dt][0] *= factor[2 * m];
            state.out[m][dt][1] *= factor[2 * m];
            state.out[m][dt][2] *= factor[2 * m + 1];
            state.out[m][dt][3] *= factor[2 * m + 1];
        }
    }
}

// Score tiles 2kt and 2kt + 1 (positions 16kt .. 16kt + 15) as the hi/lo A fragments of p v.
template <int kPositions>
__device__ __forceinline__ void split_weights(const TileScores<kPositions>& score, int kt,
                                              uint32_t (&p_hi)[kRowTiles][4],
                                              uint32_t (&p_lo)[kRowTiles][4]) {
#pragma unroll
    for (int m = 0; m < kRowTiles; ++m) {
        split_pair(score[m][2 * kt][0], score[m][2 * kt][1], p_hi[m][0], p_lo[m][0]);
        split_pair(score[m][2 * kt][2], score[m][2 * kt][3], p_hi[m][1], p_lo[m][1]);
        split_pair(score[m][2 * kt + 1][0], score[m][2 * kt + 1][1], p_hi[m][2], p_lo[m][2]);
        split_pair(score[m][2 * kt + 1][2], score[m][2 * kt + 1][3], p_hi[m][3], p_lo[m][3]);
    }
}

// A lane's rows (query head h of kv head `kv_head`, batch tokens first + row0 + 8r + g),
// normalised into out or, split, as partial state for combine_kernel (whose maxima are
// natural-log ones).
__device__ __forceinline__ void write_rows(const AttentionParams& p, int first, int row0,
                                           int kv_head, int h, const WalkRows& rows,
                                           RowState& state) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, d = p.head_dim;
#pragma unroll
    for (int r = 0; r < kLaneRows; ++r) {
        float total = state.sum[r];
        total += __shfl_xor_sync(~0u, total, 1);
        total += __shfl_xor_sync(~0u, total, 2);
        if (rows.position[r] < 0) continue;
        const int token = first + row0 + 8 * r + g;
        const int64_t head = query_head(p, token, kv_head, h);
        float* partial = p.partial + (head * p.n_splits + blockIdx.z) * (d + 2);
#pragma unroll
        for (int dt = 0; dt < kPrefillDim / 8; ++dt) {
#pragma unroll
            for (int c = 0; c < 2; ++c) {
                const int i = 8 * dt + 2 * t + c;
                if (i >= d) continue;
                const float value = state.out[r / 2][dt][2 * (r % 2) + c];
                if (p.n_splits > 1) {
                    partial[i] = value;
                } else {
                    store_output(p, head * d + i, value / total);
                }
            }
        }
        if (p.n_splits > 1 && t == 0) {
            partial[d] = state.max[r] * 0.6931471805599453f;  // ln 2
            partial[d + 1] = total;
        }
    }
}

// Bit t of the tile's batch tokens first .. first + kTokens - 1 (kTokens <= 32): `long_runs`,
// whether token t belongs to a long run; `run_starts`, whether the tile's part of that run
// starts there. Warp 0 finds them and each token's position (-1 past the batch).
struct TileRuns {
    unsigned long_runs;
    unsigned run_starts;
};
template <int kTokens>
__device__ __forceinline__ void find_tile_runs(const AttentionParams& p, int first,
                                               int (&position)[kTokens], TileRuns& runs) {
    static_assert(kTokens <= 32, "a lane per token");
    if (threadIdx.x >= 32) return;
    const int token = first + static_cast<int>(threadIdx.x);
    const bool here = threadIdx.x < kTokens && token < p.n_tokens;
    const bool long_run = here && in_long_run(p.positions, p.table_offsets, p.n_tokens, token);
    const bool starts =
        long_run && (threadIdx.x == 0 || !continues_run(p.positions, p.table_offsets, token));
    const unsigned long_runs = __ballot_sync(~0u, long_run);
    const unsigned run_starts = __ballot_sync(~0u, starts);
    if (threadIdx.x < kTokens) position[threadIdx.x] = here ? p.positions[token] : -1;
    if (threadIdx.x == 0) runs = TileRuns{long_runs, run_starts};
}

// Calls walk(begin, end) for each of the tile's parts of long runs, tile tokens [begin, end):
// the same loop in every thread.
template <int kTokens, class Walk>
__device__ __forceinline__ void for_each_run(TileRuns runs, Walk walk) {
    for (unsigned starts = runs.run_starts; starts != 0; starts &= starts - 1) {
        const int begin = __ffs(static_cast<int>(starts)) - 1;
        int end = begin + 1;
        while (end < kTokens && (runs.long_runs >> end & 1u) && !(runs.run_starts >> end & 1u))
            ++end;
        walk(begin, end);
    }
}

}  // namespace fourbit::cuda::paged_attention
