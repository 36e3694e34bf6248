// Decode attention over a bf16 pool on the tensor cores: the per-token kernel's work (one CTA
// per (token, kv head, split), tokens that are not the tiled prefill kernel's) with its
// products on mma.sync instead of CUDA-core dot products, which at long contexts bound it at
// ~7 TFLOP/s (a 128K context: 458 us a layer, 1.2 TB/s of the pool's bytes; H200).
//
// A token's query heads of one kv head are the rows of one m16 tile (group <= 8 of its 16 rows;
// the rest are zeros and never written). The CTA stages the walk 64 positions at a time, three
// stages deep (two on cards of 99 KB a CTA; cp.async, rows as stored); warp w takes positions
// 16w .. 16w + 15 of each step with an online softmax of its own, and the four warps' states are
// merged at the end:
//   scores   q k^T, 8 k-tiles x 2 position tiles, q split into bf16 hi + lo (two mma each: the
//            keys are exact bf16), the q fragments held in registers for the whole walk
//   output   p v, the scores' accumulators being the A fragment (hi + lo again), values read
//            transposed by ldmatrix.trans
// so the numerics are the f32 contract's, as in the prefill kernel (attention_prefill_cuda.cuh).
//
// With the prologue folded in (DecodePrologue), each CTA first norms and rotates its group's
// query heads from the projections, in shared memory, while its first steps load: the QK-norm's
// sums of squares over the token's whole q and k by 128 threads standing in for the prologue
// kernel's 1,024 (norm_rope.cuh), so that every value is bitwise the prologue kernel's. The CTA
// whose split holds the token's own position also norms and rotates its kv head's new key,
// writes it and the value into the pool, and puts them into its staged step in place of the
// row it loaded before they were written. A decode step thus runs one kernel instead of two.
#include <cuda_bf16.h>

#include <type_traits>

#include "ops/attention_prefill_cuda.cuh"
#include "ops/attention_prologue.h"
#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/nvfp4_mma.cuh"

namespace fourbit::cuda::paged_attention {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kStep = kDecodeStep;           // positions staged per step: 16 per warp
constexpr int kWords = kPrefillDim / 2 + 4;  // a row's bf16 pairs, +4: conflict-free ldmatrix
constexpr int kKTiles = kPrefillDim / 16;
constexpr int kDimTiles = kPrefillDim / 8;
constexpr int kMaxGroup = 8;  // query heads per kv head: the rows g < 8 of the m16 tile

// kStages steps staged: kStages - 1 in flight while one is multiplied. Three (104 KB) where the
// card lets a CTA have them with the prologue's rows; two (70 KB) on cards of 99 KB a CTA
// (sm_120, the GB10), where three do not fit.
template <int kStages>
struct DecodeTiles {
    uint32_t keys[kStages][kStep][kWords];
    uint32_t values[kStages][kStep][kWords];
};

// After the walk the stages hold the warps' states for the merge.
struct Merge {
    float max[kWarps][kMaxGroup];
    float sum[kWarps][kMaxGroup];
    float out[kWarps][kMaxGroup][kPrefillDim];
};
static_assert(sizeof(Merge) <= sizeof(DecodeTiles<2>), "the merge reuses the stages");

// The folded prologue's rows, after the stages in shared memory.
struct PrologueShared {
    float q[kMaxGroup * kPrefillDim];  // the CTA's query heads, normed and rotated, head_dim apart
    float key[kPrefillDim];            // the own split's new key, normed and rotated
    float value[kPrefillDim];          // and value
    float cosines[kPrefillDim / 2], sines[kPrefillDim / 2];
    RmsPairShared reduction;
};
static_assert(sizeof(DecodeTiles<2>) % alignof(PrologueShared) == 0 &&
              sizeof(DecodeTiles<3>) % alignof(PrologueShared) == 0);

// Positions [step0, step0 + 64) of the walk into stage `stage` (zeros past `visible` and past
// head_dim); one commit group per call, empty past the walk. A half-warp copies one row per
// instruction (16 threads, 256 contiguous bytes), rows r0 + 8i for i = 0..7; its first 8 threads
// look those rows up in the block table and hand them over by shuffles. Each thread computing
// all 8 lookups (a table load and an integer division each) made the address arithmetic ~40% of
// the walk's instructions (ncu, H200, a 32K context: ~1,050 a warp and step, 64 of them mma);
// copying rows by halves or by sectors instead cost the walk 13-22% at 32K.
template <int kStages>
__device__ __forceinline__ void load_step(const AttentionParams& p, const int32_t* table,
                                          int kv_head, int step0, int visible, int stage,
                                          DecodeTiles<kStages>& s) {
    constexpr int kVectors = kPrefillDim / 8;   // 16-byte vectors of a row: a half-warp's copies
    constexpr int kRows = kThreads / kVectors;  // rows copied at once
    static_assert(kVectors == 16 && kStep % kRows == 0, "a half-warp a row");
    const __nv_bfloat16* keys = static_cast<const __nv_bfloat16*>(p.keys);
    const __nv_bfloat16* values = static_cast<const __nv_bfloat16*>(p.values);
    if (step0 < visible) {
        const int lane = threadIdx.x & 31, r0 = threadIdx.x / kVectors;
        const int c = 8 * (threadIdx.x % kVectors);  // the thread's first element of each row
        // Pool rows (fewer than 2^31 of them) of rows r0 + 8i, i = lane % 8, for the half-warp.
        const int mine = step0 + r0 + kRows * (lane % 8);
        const int pool =
            mine < visible ? static_cast<int>(pool_row(table, static_cast<int>(p.block_size), mine))
                           : 0;
#pragma unroll
        for (int i = 0; i < kStep / kRows; ++i) {
            const int r = r0 + kRows * i;
            const int row = __shfl_sync(~0u, pool, (lane & 16) + i);
            const bool valid = step0 + r < visible && c < p.head_dim;
            const int64_t offset =
                valid ? static_cast<int64_t>(row) * p.kv_width + kv_head * p.head_dim + c : 0;
            copy_async_16(&s.keys[stage][r][c / 2], keys + offset, valid);
            copy_async_16(&s.values[stage][r][c / 2], values + offset, valid);
        }
    }
    commit_async_copies();
}

// Lane 4g + t's A fragments of q for every k-tile: row g = query head g of the group, whose
// rows start at `heads`, head_dim apart (zeros for g >= group and for dimensions past head_dim),
// row g + 8 always zero.
__device__ __forceinline__ void load_query(const AttentionParams& p, const float* heads,
                                           uint32_t (&q_hi)[kKTiles][4],
                                           uint32_t (&q_lo)[kKTiles][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float* row = heads + g * p.head_dim;
    const bool here = g < p.group;
#pragma unroll
    for (int kt = 0; kt < kKTiles; ++kt) {
        float v[4];
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int k = 16 * kt + 2 * t + (c & 1) + 8 * (c >> 1);
            v[c] = here && k < p.head_dim ? row[k] : 0.0f;
        }
        split_pair(v[0], v[1], q_hi[kt][0], q_lo[kt][0]);
        split_pair(v[2], v[3], q_hi[kt][2], q_lo[kt][2]);
        q_hi[kt][1] = q_lo[kt][1] = q_hi[kt][3] = q_lo[kt][3] = 0u;
    }
}

// A warp's row g over its share of the walk: the base-2 maximum, this lane's part of the sum,
// and the m16n8 output accumulators of the 16 dimension tiles. Rows g + 8 of the m16 tile are
// padding (a group is at most 8 query heads): their scores are zeros, and neither the softmax
// nor the merge spends anything on them (their accumulators, out[dt][2] and [3], are left as
// the mma leaves them, never read).
struct WarpState {
    float max;
    float sum;
    float out[kDimTiles][4];
};

// The warp's 16 positions of a staged step: scores, mask (positions >= visible), online
// softmax, out += p v.
template <int kStages>
__device__ __forceinline__ void attend_step(const DecodeTiles<kStages>& s, int stage, int first,
                                            int visible, float scale_log2,
                                            const uint32_t (&q_hi)[kKTiles][4],
                                            const uint32_t (&q_lo)[kKTiles][4], WarpState& state) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3;
    const int i = lane >> 3, j = lane & 7;  // ldmatrix: lane 8i + j gives row j of matrix i
    const int row0 = 16 * warp;
    // Keys: matrix i holds positions 8 (i / 2) .. of the warp's 16, k half i % 2.
    const uint32_t* key_row = &s.keys[stage][row0 + j + 8 * (i >> 1)][4 * (i & 1)];
    float score[2][4] = {};
#pragma unroll
    for (int kt = 0; kt < kKTiles; ++kt) {
        uint32_t b[4];
        nvfp4::load_matrices(b, key_row + 8 * kt);
        const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
        mma_split_a(score[0], q_hi[kt], q_lo[kt], b0);
        mma_split_a(score[1], q_hi[kt], q_lo[kt], b1);
    }
    float step_max = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            const int position = first + 8 * nt + 2 * t + c;
            float& value = score[nt][c];
            value = position < visible ? value * scale_log2 : -INFINITY;
            step_max = fmaxf(step_max, value);
        }
    }
    step_max = fmaxf(step_max, __shfl_xor_sync(~0u, step_max, 1));
    step_max = fmaxf(step_max, __shfl_xor_sync(~0u, step_max, 2));
    const float new_max = fmaxf(state.max, step_max);  // finite: position `first` is visible
    const float factor = exp2f(state.max - new_max);   // 0 on the warp's first step
    state.max = new_max;
    float step_sum = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            score[nt][c] = exp2f(score[nt][c] - state.max);
            step_sum += score[nt][c];
        }
    }
    state.sum = state.sum * factor + step_sum;
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
        state.out[dt][0] *= factor;
        state.out[dt][1] *= factor;
    }
    // The two position tiles' accumulators of row g are the A fragment of positions 0 .. 15
    // (rows g + 8 zeros).
    uint32_t p_hi[4], p_lo[4];
    split_pair(score[0][0], score[0][1], p_hi[0], p_lo[0]);
    split_pair(score[1][0], score[1][1], p_hi[2], p_lo[2]);
    p_hi[1] = p_lo[1] = p_hi[3] = p_lo[3] = 0u;
    // Values, transposed: matrix i holds positions 8 (i % 2) .., dimensions 8 (i / 2) .. of a
    // pair of dimension tiles.
    const uint32_t* value_row = &s.values[stage][row0 + j + 8 * (i & 1)][4 * (i >> 1)];
#pragma unroll
    for (int pair = 0; pair < kDimTiles / 2; ++pair) {
        uint32_t b[4];
        load_matrices_transposed(b, value_row + 8 * pair);
        const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
        mma_split_a(state.out[2 * pair], p_hi, p_lo, b0);
        mma_split_a(state.out[2 * pair + 1], p_hi, p_lo, b1);
    }
}

// The four warps' states as one, written normalised to out or, split, as combine_kernel's
// partial state (natural-log maximum, sum, unnormalised outputs).
__device__ __forceinline__ void merge_and_write(const AttentionParams& p, int token, int kv_head,
                                                WarpState& state, Merge& m) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    float total = state.sum;
    total += __shfl_xor_sync(~0u, total, 1);
    total += __shfl_xor_sync(~0u, total, 2);
    if (t == 0) {
        m.max[warp][g] = state.max;
        m.sum[warp][g] = total;
    }
    __syncthreads();
    float largest = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) largest = fmaxf(largest, m.max[w][g]);
    // A warp that saw no position of this split's walk (max -inf) adds nothing.
    const float factor = state.max == -INFINITY ? 0.0f : exp2f(state.max - largest);
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
        m.out[warp][g][8 * dt + 2 * t] = state.out[dt][0] * factor;
        m.out[warp][g][8 * dt + 2 * t + 1] = state.out[dt][1] * factor;
    }
    __syncthreads();
    const int d = p.head_dim;
    for (int index = threadIdx.x; index < p.group * d; index += kThreads) {
        const int row = index / d, i = index % d;
        float largest = -INFINITY;
        for (int w = 0; w < kWarps; ++w) largest = fmaxf(largest, m.max[w][row]);
        float value = 0.0f, total = 0.0f;
        for (int w = 0; w < kWarps; ++w) {
            value += m.out[w][row][i];
            total +=
                m.max[w][row] == -INFINITY ? 0.0f : m.sum[w][row] * exp2f(m.max[w][row] - largest);
        }
        const int64_t head = query_head(p, token, kv_head, row);
        if (p.n_splits > 1) {
            float* partial = p.partial + (head * p.n_splits + blockIdx.z) * (d + 2);
            partial[i] = value;
            if (i == 0) {
                partial[d] = largest * 0.6931471805599453f;  // ln 2
                partial[d + 1] = total;
            }
        } else {
            store_output(p, head * d + i, value / total);
        }
    }
}

// The prologue for the CTA's kv head of batch token `token` (see the top): the group's query
// heads into f.q, and, if `own`, the new key and value into f.key, f.value and the pool. W: the
// norm weights' element (float, or bf16 bits).
template <typename W>
__device__ __forceinline__ void fold_prologue(const AttentionParams& p, const DecodePrologue& f,
                                              int token, int kv_head, int position, bool own,
                                              const int32_t* table, PrologueShared& s) {
    const float* q = p.q + static_cast<int64_t>(token) * p.q_width;
    const int64_t kv_row = static_cast<int64_t>(token) * p.kv_width;
    const W* q_weight = static_cast<const W*>(f.q_weight);
    const W* k_weight = static_cast<const W*>(f.k_weight);
    const int d = p.head_dim, first = kv_head * p.group * d;
    // This thread's elements of the CTA's rows and their weights (elements t, t + kThreads, ...
    // of the group's heads; element t of the kv head's key and value), loaded first so that
    // they arrive with the rows' sums rather than after them.
    constexpr int kPerThread = kMaxGroup * kPrefillDim / kThreads;
    float qs[kPerThread];
    W qw[kPerThread];
#pragma unroll
    for (int m = 0; m < kPerThread; ++m) {
        const int i = threadIdx.x + m * kThreads;
        if (i < p.group * d) {
            qs[m] = q[first + i];
            qw[m] = q_weight[first + i];
        }
    }
    static_assert(kPrefillDim <= kThreads, "one key element a thread");
    const int column = kv_head * d + threadIdx.x;
    float key = 0.0f, value = 0.0f;
    W kw{};
    if (own && static_cast<int>(threadIdx.x) < d) {
        key = f.k[kv_row + column];
        value = f.v[kv_row + column];
        kw = k_weight[column];
    }
    // The whole rows for the norms' sums, loaded before warps 0 and 1 turn to the angles'
    // double cos and sin, so that those run while the loads are in flight.
    constexpr int kSlots = kNormThreads / kThreads;
    constexpr int kQPerSlot = kPrologueMaxQWidth / kNormThreads;
    constexpr int kKPerSlot = kPrologueMaxKvWidth / kNormThreads;
    float q_row[kSlots][kQPerSlot], k_row[kSlots][kKPerSlot];
    load_stand_in<kThreads>(q, p.q_width, q_row);
    load_stand_in<kThreads>(f.k + kv_row, p.kv_width, k_row);
    rope_angles(static_cast<float>(position), f.frequencies, f.half, s.cosines, s.sines);
    double q_sums[kSlots], k_sums[kSlots];
    stand_in_sums_of_squares<kThreads>(q_row, p.q_width, q_sums);
    stand_in_sums_of_squares<kThreads>(k_row, p.kv_width, k_sums);
    const float2 scale =
        rms_scale_pair<kThreads>(q_sums, p.q_width, k_sums, p.kv_width, f.eps, s.reduction);
    // The prologue kernel's expressions (store_normed), element by element.
#pragma unroll
    for (int m = 0; m < kPerThread; ++m) {
        const int i = threadIdx.x + m * kThreads;
        if (i < p.group * d) s.q[i] = qs[m] * scale.x * norm_weight(qw, m);
    }
    if (own && static_cast<int>(threadIdx.x) < d) {
        s.key[threadIdx.x] = key * scale.y * norm_weight(&kw, 0);
        s.value[threadIdx.x] = value;
    }
    __syncthreads();
    rope_rotate(s.q, s.cosines, s.sines, p.group, d, f.half);
    if (own) rope_rotate(s.key, s.cosines, s.sines, 1, d, f.half);
    __syncthreads();
    if (own) {
        const int64_t row = pool_row(table, static_cast<int>(p.block_size), position);
        for (int i = threadIdx.x; i < d; i += kThreads) {
            store_kv(f.keys + row * p.kv_width + kv_head * d + i, s.key[i]);
            store_kv(f.values + row * p.kv_width + kv_head * d + i, s.value[i]);
        }
    }
}

// The own position's staged row (loaded before the prologue wrote it) replaced by the new key
// and value, rounded to bf16 as the pool holds them.
template <int kStages>
__device__ __forceinline__ void patch_own_row(const PrologueShared& f, int head_dim, int stage,
                                              int row, DecodeTiles<kStages>& s) {
    for (int w = threadIdx.x; w < head_dim / 2; w += kThreads) {
        const __nv_bfloat162 key = __floats2bfloat162_rn(f.key[2 * w], f.key[2 * w + 1]);
        const __nv_bfloat162 value = __floats2bfloat162_rn(f.value[2 * w], f.value[2 * w + 1]);
        s.keys[stage][row][w] = *reinterpret_cast<const uint32_t*>(&key);
        s.values[stage][row][w] = *reinterpret_cast<const uint32_t*>(&value);
    }
}

// W: the folded prologue's norm weights' element (float, or bf16 bits), or void without one;
// kStages: DecodeTiles'.
template <typename W, int kStages>
__global__ void __launch_bounds__(kThreads)
    decode_attention_kernel(AttentionParams p, DecodePrologue prologue) {
    constexpr bool kPrologue = !std::is_void_v<W>;
    extern __shared__ float4 shared_words[];
    DecodeTiles<kStages>& s = *reinterpret_cast<DecodeTiles<kStages>*>(shared_words);
    const int token = blockIdx.x, kv_head = blockIdx.y;
    if (p.skip_long_runs && in_long_run_warp(p.positions, p.table_offsets, p.n_tokens, token)) {
        return;  // the tiled kernel's token
    }
    const int warp = threadIdx.x >> 5;
    const int begin = static_cast<int>(blockIdx.z) * p.split;
    const int visible = min(p.positions[token] + 1, begin + p.split);  // causal: 0 .. own
    if (begin >= visible) {  // a split past this token's own position: nothing to attend
        write_empty_split<kThreads>(p, token, kv_head);
        return;
    }
    const int32_t* table = p.tables + p.table_offsets[token];
    const int n_steps = (visible - begin + kStep - 1) / kStep;
    for (int stage = 0; stage < kStages - 1; ++stage) {
        load_step(p, table, kv_head, begin + stage * kStep, visible, stage, s);
    }
    const float* heads = p.q + static_cast<int64_t>(token) * p.q_width +
                         static_cast<int64_t>(kv_head) * p.group * p.head_dim;
    int own_step = -1, own_row = 0;  // the step and row of the token's own position, if here
    if constexpr (kPrologue) {
        PrologueShared& f = *reinterpret_cast<PrologueShared*>(
            reinterpret_cast<char*>(shared_words) + sizeof(DecodeTiles<kStages>));
        const int position = p.positions[token];
        const bool own = position + 1 == visible;
        fold_prologue<W>(p, prologue, token, kv_head, position, own, table, f);
        heads = f.q;
        if (own) {
            own_step = (position - begin) / kStep;
            own_row = (position - begin) % kStep;
        }
    }
    uint32_t q_hi[kKTiles][4], q_lo[kKTiles][4];
    load_query(p, heads, q_hi, q_lo);
    WarpState state;
    state.max = -INFINITY;
    state.sum = 0.0f;
#pragma unroll
    for (int dt = 0; dt < kDimTiles; ++dt) {
#pragma unroll
        for (int c = 0; c < 4; ++c) state.out[dt][c] = 0.0f;
    }
    const float scale_log2 = p.scale * 1.4426950408889634f;  // log2 e
    for (int step = 0; step < n_steps; ++step) {
        const int stage = step % kStages, step0 = begin + step * kStep;
        wait_async_copies<kStages - 2>();  // step `step` is here
        __syncthreads();  // for everyone; and everyone is done with the stage refilled next
        load_step(p, table, kv_head, step0 + (kStages - 1) * kStep, visible,
                  (step + kStages - 1) % kStages, s);
        if (kPrologue && step == own_step) {
            patch_own_row(
                *reinterpret_cast<const PrologueShared*>(
                    reinterpret_cast<const char*>(shared_words) + sizeof(DecodeTiles<kStages>)),
                p.head_dim, stage, own_row, s);
            __syncthreads();
        }
        const int first = step0 + 16 * warp;
        if (first < visible) attend_step(s, stage, first, visible, scale_log2, q_hi, q_lo, state);
    }
    wait_all_async_copies();
    __syncthreads();  // the stages become the merge's
    merge_and_write(p, token, kv_head, state, *reinterpret_cast<Merge*>(shared_words));
}

}  // namespace

namespace {

template <typename W, int kStages>
cudaError_t launch_staged(const AttentionParams& p, const DecodePrologue& prologue, dim3 grid,
                          size_t bytes, cudaStream_t stream) {
    const auto kernel = decode_attention_kernel<W, kStages>;
    const cudaError_t status = opt_in_shared_memory(kernel, bytes);
    if (status != cudaSuccess) return status;
    kernel<<<grid, kThreads, bytes, stream>>>(p, prologue);
    return cudaGetLastError();
}

// Three stages where they fit a CTA's shared memory (shared_memory_per_cta), else two.
template <typename W>
cudaError_t launch(const AttentionParams& p, const DecodePrologue& prologue, dim3 grid,
                   cudaStream_t stream) {
    const size_t rows = std::is_void_v<W> ? 0 : sizeof(PrologueShared);
    if (sizeof(DecodeTiles<3>) + rows <= shared_memory_per_cta()) {
        return launch_staged<W, 3>(p, prologue, grid, sizeof(DecodeTiles<3>) + rows, stream);
    }
    return launch_staged<W, 2>(p, prologue, grid, sizeof(DecodeTiles<2>) + rows, stream);
}

}  // namespace

cudaError_t launch_decode_attention(const AttentionParams& p, const DecodePrologue* prologue,
                                    dim3 grid, cudaStream_t stream) {
    if (prologue == nullptr) return launch<void>(p, DecodePrologue{}, grid, stream);
    if (prologue->bf16_weights) return launch<uint16_t>(p, *prologue, grid, stream);
    return launch<float>(p, *prologue, grid, stream);
}

}  // namespace fourbit::cuda::paged_attention
