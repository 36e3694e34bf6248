// The NVFP4 MoE for many tokens (prefill chunks): the decode kernels (moe_cuda.cu) give every
// routed slot its own pass over its expert's weights, so a 512-token chunk reads each expert
// ~16 times over. Here the slots are first grouped by expert on the device (a counting sort)
// into tiles of one expert's slots. Few slots per expert (batched decode, short chunks): each
// CTA multiplies eight 16-row stripes (gate/up's in turn, down's as one stream of chunks) with a
// tile of up to 8 slots (the mma's 8 token columns), k split over its warps, so every expert's
// weights are read once per 8 slots at full memory parallelism; the SiLU products go from gate/up
// to down as bf16 rows, and M2's widths run in the decode kernels' whole chunks of 3 groups (73
// and 74 registers: three CTAs an SM, where chunks of 4 took ~90 and two). H200 kernel bench, the
// experts at 32 tokens (~163 of 256 experts): 492.5 -> 428.6 us with both and the grid cut to the
// tiles there can be; the 62-layer decode at batch 16 / 32 728.7 / 985.0 -> 834.9 / 1,115.0 tok/s.
// Many (long prefill chunks): the tiled GEMM (ops/cuda/nvfp4_gemm.cuh) over tiles of 64 slots, 128
// rows per CTA, activations as bf16. Down writes each slot's weighted output row; a last kernel
// sums a token's k rows in slot order, as the CPU does. No host synchronisation anywhere (graph
// capture stays possible).
#include <algorithm>
#include <cub/block/block_scan.cuh>
#include <optional>
#include <type_traits>

#include "ops/cuda/nvfp4_gemm.cuh"
#include "ops/cuda/nvfp4_gemv.cuh"
#include "ops/cuda/round_bf16.h"
#include "ops/cuda/stream.h"
#include "ops/moe.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

using nvfp4::ExpertsView;
using nvfp4::kGroupCols;
using nvfp4::kThreads;
using nvfp4::kWarps;

constexpr int kTileSlots = 8;  // one mma token tile
// Stripes of one tile per CTA in the few-slots form: the tile's rows are staged once for all
// of them (at batch 32 they were as many bytes from L2 as the weights), and a stripe's first
// weights load while the previous one's sums meet. H100, M2.7 experts at 32 tokens: 960 us
// with 1, 774 with 2, 674 with 4 (the 8-layer slice's batch-32 decode step 13.4 -> 11.4 ms);
// H200, the 8-layer slice's decode at batch 8 / 16 / 32, 8 against 4 (since the tiles run at
// the decode kernels' rate): 4,087-4,236 / 5,451-5,574 / 7,357-7,393 -> 4,244-4,247 /
// 5,710-5,719 / 7,594-7,600 tok/s (down alone at 8 gained about half of that).
constexpr int kStripesPerCta = 8;
// 128 rows x 64 slots in 4 warps of 32 x 64: each dequantised weight fragment serves 8 mma.
// H100, M2.7 slices, pp4096, ms per layer by differencing 8 and 4 layers: 10.28 against 10.95
// for 8 warps of 16 x 64, 11.09 for 2 warps of 64 x 64, 10.97 for 8 warps of 32 x 32 and 10.97
// for 4 warps of 64 x 32 (the previous tile, which beat 64 x 16 and 32 x 16 shapes clearly).
using GemmTile = nvfp4::gemm::Shape<4, 1, 2, 8>;
// From this many slots per expert on average the GEMM's 64-slot tiles pay (prefill chunks
// from 512 tokens on M2).
constexpr int kGemmSlotsPerExpert = 16;

// Slots grouped by expert: sorted[] lists the slots of expert 0, then of expert 1, ...; tile i
// covers sorted[tile_begin[i] .. + tile_count[i]) of expert tile_expert[i]; n_tiles[0] tiles.
struct Grouping {
    int32_t* sorted;       // [slots]
    int32_t* tile_expert;  // [max_tiles]
    int32_t* tile_begin;
    int32_t* tile_count;
    int32_t* n_tiles;  // [1]
};

// The counting sort in one CTA: the experts' counts in shared memory, their offsets and tiles of
// up to tile_slots slots by two block-wide prefix sums (expert e = thread e /
// kPlanExpertsPerThread's), then every slot placed at its expert's cursor. One graph node where a
// memset and a count, plan and scatter kernel were four, each mostly its launch at decode's few
// hundred slots. The order of slots within an expert does not matter: each slot's rows are
// computed alone.
constexpr int kPlanThreads = 256;
constexpr int kPlanExpertsPerThread = 4;
static_assert(kPlanThreads * kPlanExpertsPerThread >= kMaxGroupedExperts, "one expert per slot");

// visit(slot, expert) for this thread's slots, kSlotsInFlight ids loaded before any is visited:
// one CTA walks a prefill chunk's tens of thousands of slots, where a load at a time left each
// pass a chain of round trips (the 62-layer pp4096 394 -> 398 ms, two calls). With 16 in flight
// prefill runs as with the three-kernel sort (H200, 8-layer pp4096, one call: 75,268 / 75,257
// against 75,778 / 75,049 tok/s).
constexpr int kSlotsInFlight = 16;
template <typename Visit>
__device__ __forceinline__ void for_each_slot(const int32_t* ids, int n_slots, Visit visit) {
    for (int first = 0; first < n_slots; first += kPlanThreads * kSlotsInFlight) {
        int expert[kSlotsInFlight];
#pragma unroll
        for (int j = 0; j < kSlotsInFlight; ++j) {
            const int slot = first + j * kPlanThreads + static_cast<int>(threadIdx.x);
            expert[j] = slot < n_slots ? ids[slot] : -1;
        }
#pragma unroll
        for (int j = 0; j < kSlotsInFlight; ++j) {
            if (expert[j] >= 0)
                visit(first + j * kPlanThreads + static_cast<int>(threadIdx.x), expert[j]);
        }
    }
}
__global__ void __launch_bounds__(kPlanThreads)
    group_kernel(const int32_t* ids, int n_slots, int n_experts, int tile_slots, Grouping g) {
    using Scan = cub::BlockScan<int, kPlanThreads>;
    __shared__ typename Scan::TempStorage storage;
    __shared__ int cursors[kPlanThreads * kPlanExpertsPerThread];
    for (int e = threadIdx.x; e < n_experts; e += kPlanThreads) cursors[e] = 0;
    __syncthreads();
    for_each_slot(ids, n_slots, [&](int, int expert) { atomicAdd(cursors + expert, 1); });
    __syncthreads();
    int counts[kPlanExpertsPerThread], tiles[kPlanExpertsPerThread];
#pragma unroll
    for (int j = 0; j < kPlanExpertsPerThread; ++j) {
        const int e = threadIdx.x * kPlanExpertsPerThread + j;
        counts[j] = e < n_experts ? cursors[e] : 0;
        tiles[j] = (counts[j] + tile_slots - 1) / tile_slots;
    }
    int offsets[kPlanExpertsPerThread], first_tiles[kPlanExpertsPerThread], total_tiles;
    Scan(storage).ExclusiveSum(counts, offsets);
    __syncthreads();  // the scans share their storage
    Scan(storage).ExclusiveSum(tiles, first_tiles, total_tiles);
#pragma unroll
    for (int j = 0; j < kPlanExpertsPerThread; ++j) {
        const int e = threadIdx.x * kPlanExpertsPerThread + j;
        if (e >= n_experts) break;
        for (int i = 0; i < tiles[j]; ++i) {
            g.tile_expert[first_tiles[j] + i] = e;
            g.tile_begin[first_tiles[j] + i] = offsets[j] + i * tile_slots;
            g.tile_count[first_tiles[j] + i] = min(tile_slots, counts[j] - i * tile_slots);
        }
        cursors[e] = offsets[j];  // a thread's own experts: read above, by it alone
    }
    if (threadIdx.x == 0) g.n_tiles[0] = total_tiles;
    __syncthreads();
    for_each_slot(ids, n_slots,
                  [&](int slot, int expert) { g.sorted[atomicAdd(cursors + expert, 1)] = slot; });
}

// For each stripe of the CTA's run of kStripesPerCta (stripes_per_expert in all), warp w's share
// of k of that stripe of one expert's matrix (stripe-major from codes and scales) times the
// tile's `count` slot rows source[row_of(r)], staged once for the run in `staged` (source f32, or
// bf16 as a producer rounded it), into partial[i][w]; then finish(stripe, partial[i]) with the
// CTA synchronised. kChunk groups a warp in flight, kWhole as the decode kernels'
// (nvfp4::whole_chunks).
// kStream false: one stripe at a time through partial[0], the next stripe's first weights
// loading while a stripe's partial sums meet. kStream true: the run's stripes as one stream of
// chunks (nvfp4::stripes_partial: the next chunk loads while one is multiplied, across stripes),
// partial[i] for stripe i, one barrier for the run; the same sums in the same order.
template <bool kStream, int kChunk, bool kWhole, typename T, typename RowOf, typename Finish>
__device__ __forceinline__ void tile_stripes(const uint4* codes, const uint2* scales, int expert,
                                             int stripes_per_expert, int k, const T* source,
                                             int count, RowOf row_of, uint2* staged,
                                             float (*partial)[kWarps][4][32], Finish finish) {
    const int warp = threadIdx.x >> 5, groups = k / kGroupCols;
    const int first_group = warp * groups / kWarps, end_group = (warp + 1) * groups / kWarps;
    const int first_stripe = blockIdx.x * kStripesPerCta;
    const int n_stripes = min(kStripesPerCta, stripes_per_expert - first_stripe);
    const int64_t expert_tile = static_cast<int64_t>(expert) * stripes_per_expert + first_stripe;
    nvfp4::LaneTiles at(codes + expert_tile * groups * 32, scales + expert_tile * groups * 8,
                        first_group);
    nvfp4::WeightChunk<kChunk> first;
    nvfp4::load_chunk<kWhole>(first, at, end_group - first_group);
    const auto row_at = [&](int r) { return source + static_cast<int64_t>(row_of(r)) * k; };
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        nvfp4::stage_bf16_rows(staged, count, k, row_at);
    } else {
        nvfp4::stage_rows(staged, count, k, row_at);
    }
    const nvfp4::StagedB<1> rows(staged, nvfp4::fragment_stride(k), count);
    if constexpr (kStream) {
        nvfp4::stripes_partial<kWhole>(first, at, groups, n_stripes, first_group, end_group, rows,
                                       partial);
        __syncthreads();
        for (int s = 0; s < n_stripes; ++s) finish(first_stripe + s, partial[s]);
    } else {
        for (int s = 0; s < n_stripes; ++s) {
            float acc[1][4] = {};
            nvfp4::stripe_partial<1, kWhole>(first, at, first_group, end_group, rows, acc);
            nvfp4::store_partials<1>(partial[0], acc);
            if (s + 1 < n_stripes) {
                at = at.groups_on(groups);
                nvfp4::load_chunk<kWhole>(first, at, end_group - first_group);
            }
            __syncthreads();
            finish(first_stripe + s, partial[0]);
            __syncthreads();  // partial is rewritten by the next stripe
        }
    }
}

// grid (2 I / 16 stripes / kStripesPerCta, tiles): mid[slot] = silu(gate_e h) * (up_e h) for
// the tile's slots, rounded to bf16 (the down kernel multiplies them so).
template <int kChunk, bool kWhole, typename X>
__global__ void __launch_bounds__(kThreads)
    grouped_gate_up_kernel(ExpertsView experts, Grouping g, const X* h, int top_k,
                           __nv_bfloat16* mid) {
    extern __shared__ uint2 staged[];
    const int tile = blockIdx.y;
    if (tile >= g.n_tiles[0]) return;
    const int expert = g.tile_expert[tile], begin = g.tile_begin[tile], count = g.tile_count[tile];
    __shared__ float partial[1][kWarps][4][32];
    tile_stripes<false, kChunk, kWhole>(
        experts.gate_up_codes, experts.gate_up_scales, expert, 2 * experts.intermediate / 16,
        experts.hidden, h, count, [&](int r) { return g.sorted[begin + r] / top_k; }, staged,
        partial,
        [&](int stripe, float(*sums)[4][32]) {
            // Output (row g, slot n): lane 4g + n / 2, registers n % 2 (gate), 2 + n % 2 (up).
            if (threadIdx.x < 8 * kTileSlots) {
                const int row = threadIdx.x / kTileSlots, n = threadIdx.x % kTileSlots;
                if (n < count) {
                    const int lane = 4 * row + n / 2;
                    float gate = 0.0f, up = 0.0f;
#pragma unroll
                    for (int v = 0; v < kWarps; ++v) {
                        gate += sums[v][n % 2][lane];
                        up += sums[v][2 + n % 2][lane];
                    }
                    gate *= experts.out_scales[expert * 3 + 0];
                    up *= experts.out_scales[expert * 3 + 1];
                    const int slot = g.sorted[begin + n];
                    mid[static_cast<int64_t>(slot) * experts.intermediate + stripe * 8 + row] =
                        __float2bfloat16_rn(gate / (1.0f + expf(-gate)) * up);
                }
            }
        });
}

// grid (H / 16 stripes / kStripesPerCta, tiles): rows[slot] = weight[slot] (down_e mid[slot])
// for the tile.
template <int kChunk, bool kWhole>
__global__ void __launch_bounds__(kThreads)
    grouped_down_kernel(ExpertsView experts, Grouping g, const float* weights,
                        const __nv_bfloat16* mid, float* rows) {
    extern __shared__ uint2 staged[];
    const int tile = blockIdx.y;
    if (tile >= g.n_tiles[0]) return;
    const int expert = g.tile_expert[tile], begin = g.tile_begin[tile], count = g.tile_count[tile];
    // A stripe's sums a row each (32 KB) for the streamed run: down's 3 groups a warp a stripe
    // left one chunk a warp in flight between barriers. H200, 8-layer decode at batch 8 / 16 /
    // 32, three rounds in one call: 4,258-4,291 / 5,758-5,766 / 7,620-7,681 -> 4,294-4,323 /
    // 5,817-5,834 / 7,674-7,685 tok/s.
    __shared__ float partial[kStripesPerCta][kWarps][4][32];
    tile_stripes<true, kChunk, kWhole>(
        experts.down_codes, experts.down_scales, expert, experts.hidden / 16, experts.intermediate,
        mid, count, [&](int r) { return g.sorted[begin + r]; }, staged, partial,
        [&](int stripe, float(*sums)[4][32]) {
            // Output (row r of the stripe, slot column n): lane 4 (r % 8) + n / 2, register
            // n % 2 + (r >= 8 ? 2 : 0).
            if (threadIdx.x < 16 * kTileSlots) {
                const int r = threadIdx.x / kTileSlots, n = threadIdx.x % kTileSlots;
                if (n < count) {
                    const int lane = 4 * (r % 8) + n / 2, reg = n % 2 + (r >= 8 ? 2 : 0);
                    float sum = 0.0f;
#pragma unroll
                    for (int v = 0; v < kWarps; ++v) sum += sums[v][reg][lane];
                    const int slot = g.sorted[begin + n];
                    rows[static_cast<int64_t>(slot) * experts.hidden + stripe * 16 + r] =
                        weights[slot] * experts.out_scales[expert * 3 + 2] * sum;
                }
            }
        });
}

using GemmAccumulators = float[GemmTile::kMTiles][GemmTile::kNTiles][4];

// acc = this CTA's block of rows (blockIdx.x) of one expert's matrix (n_stripes stripes of
// `groups` groups, stripe-major from codes and scales) times the tile's `count` slot rows
// row_of(r); returns the rows it covered.
template <typename RowOf>
__device__ __forceinline__ nvfp4::gemm::StripeRange multiply_expert(const uint4* codes,
                                                                    const uint2* scales, int expert,
                                                                    int n_stripes, int groups,
                                                                    int count, RowOf row_of,
                                                                    GemmAccumulators& acc) {
    using S = GemmTile;
    extern __shared__ __align__(16) unsigned char shared[];
    const int64_t first_tile = static_cast<int64_t>(expert) * n_stripes * groups;
    const nvfp4::gemm::StripeRange range{codes + first_tile * 32, scales + first_tile * 8,
                                         static_cast<int>(blockIdx.x) * S::kStripes, n_stripes,
                                         groups};
    const __nv_bfloat16* rows[S::kRowChunks];
    nvfp4::gemm::thread_rows<S>(
        rows, [&](int r) -> const __nv_bfloat16* { return r < count ? row_of(r) : nullptr; });
    nvfp4::gemm::multiply<S>(reinterpret_cast<nvfp4::gemm::Stage<S>*>(shared), range, rows, count,
                             acc);
    return range;
}

// The GEMM forms, grid (stripe blocks, max tiles): mid (bf16: the down GEMM's operand) and
// rows as grouped_gate_up_kernel and grouped_down_kernel write them, from h as bf16.
__global__ void __launch_bounds__(GemmTile::kThreads)
    gemm_gate_up_kernel(ExpertsView experts, Grouping g, const __nv_bfloat16* h, int top_k,
                        __nv_bfloat16* mid) {
    const int tile = blockIdx.y;
    if (tile >= g.n_tiles[0]) return;
    const int expert = g.tile_expert[tile], begin = g.tile_begin[tile], count = g.tile_count[tile];
    const int n_stripes = 2 * experts.intermediate / 16;
    GemmAccumulators acc = {};
    const nvfp4::gemm::StripeRange range = multiply_expert(
        experts.gate_up_codes, experts.gate_up_scales, expert, n_stripes,
        experts.hidden / kGroupCols, count,
        [&](int r) {
            return h + static_cast<int64_t>(g.sorted[begin + r] / top_k) * experts.hidden;
        },
        acc);
    const float gate_scale = experts.out_scales[expert * 3 + 0];
    const float up_scale = experts.out_scales[expert * 3 + 1];
    // Stripe s: gate rows 8s + g in fragment rows g (low), the matching up rows in g + 8 (high).
    nvfp4::gemm::for_each_output<GemmTile>(
        range, count, acc, [&](int stripe, int row, int column, float low, float high) {
            const float gate = low * gate_scale, up = high * up_scale;
            const int slot = g.sorted[begin + column];
            mid[static_cast<int64_t>(slot) * experts.intermediate + stripe * 8 + row] =
                __float2bfloat16_rn(gate / (1.0f + expf(-gate)) * up);
        });
}

__global__ void __launch_bounds__(GemmTile::kThreads)
    gemm_down_kernel(ExpertsView experts, Grouping g, const float* weights,
                     const __nv_bfloat16* mid, float* rows_out) {
    const int tile = blockIdx.y;
    if (tile >= g.n_tiles[0]) return;
    const int expert = g.tile_expert[tile], begin = g.tile_begin[tile], count = g.tile_count[tile];
    const int n_stripes = experts.hidden / 16;
    GemmAccumulators acc = {};
    const nvfp4::gemm::StripeRange range = multiply_expert(
        experts.down_codes, experts.down_scales, expert, n_stripes,
        experts.intermediate / kGroupCols, count,
        [&](int r) {
            return mid + static_cast<int64_t>(g.sorted[begin + r]) * experts.intermediate;
        },
        acc);
    const float down_scale = experts.out_scales[expert * 3 + 2];
    nvfp4::gemm::for_each_output<GemmTile>(
        range, count, acc, [&](int stripe, int row, int column, float low, float high) {
            const int slot = g.sorted[begin + column];
            const float scale = weights[slot] * down_scale;
            float* out = rows_out + static_cast<int64_t>(slot) * experts.hidden + stripe * 16 + row;
            out[0] = scale * low;
            out[8] = scale * high;
        });
}

// out[t] = sum over j < top_k, in order, of rows[t top_k + j] (the CPU's order).
__global__ void sum_slots_kernel(const float* rows, int n_tokens, int top_k, int hidden,
                                 float* out) {
    const int64_t n = static_cast<int64_t>(n_tokens) * hidden;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = i / hidden, c = i % hidden;
        float sum = 0.0f;
        for (int j = 0; j < top_k; ++j) sum += rows[(t * top_k + j) * hidden + c];
        out[i] = sum;
    }
}

// sum_slots_kernel's sums (the same order) four columns a thread, where hidden is a multiple of 4:
// grid (column vectors / 256, tokens), so no thread divides, and each issues its top_k loads at
// once: a 4,096-token chunk's slot rows are ~400 MB on M2, which the scalar kernel, a 64-bit
// division an element, read in ~150 us a layer (ncu, H200).
__global__ void sum_slots_vector_kernel(const float4* rows, int top_k, int vectors, float4* out) {
    const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (c >= vectors) return;
    const int64_t t = blockIdx.y;
    const float4* slots = rows + t * top_k * vectors + c;
    float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int j = 0; j < top_k; ++j) {
        const float4 v = slots[static_cast<int64_t>(j) * vectors];
        sum.x += v.x;
        sum.y += v.y;
        sum.z += v.z;
        sum.w += v.w;
    }
    out[t * vectors + c] = sum;
}

// The chunk for a grouped kernel over k columns: 3 groups where every warp's share is whole
// chunks of 3 (M2: gate/up 6 groups a warp, down 3), as the decode gate/up takes them; else the
// decode's chunks, unguarded where whole. launch(std::integral_constant<int, chunk>, whole).
template <typename Launch>
void with_chunks(int k, Launch&& launch) {
    constexpr int kChunk = nvfp4::kProductionChunk;
    if (nvfp4::whole_chunks<3>(k, kWarps)) {
        launch(std::integral_constant<int, 3>{}, std::true_type{});
    } else if (nvfp4::whole_chunks<kChunk>(k, kWarps)) {
        launch(std::integral_constant<int, kChunk>{}, std::true_type{});
    } else {
        launch(std::integral_constant<int, kChunk>{}, std::false_type{});
    }
}

// gate/up then down as the per-stripe GEMVs over tiles of up to kTileSlots slots, each CTA
// kStripesPerCta stripes of one tile; a grid row for each tile there can be (the plan makes
// n_tiles of them; each tile holds a slot, so no more than there are slots).
template <typename X>
void launch_grouped(const ExpertsView& view, const Grouping& g, int tiles, const X* h, int top_k,
                    const float* weights, __nv_bfloat16* mid, float* rows) {
    cudaStream_t stream = current_stream();
    const auto blocks = [](int n_rows) {
        return (n_rows / 16 + kStripesPerCta - 1) / kStripesPerCta;
    };
    with_chunks(view.hidden, [&](auto chunk, auto whole) {
        const auto kernel = grouped_gate_up_kernel<chunk(), whole(), X>;
        const size_t bytes = nvfp4::staged_bytes(kTileSlots, view.hidden);
        FOURBIT_CUDA_CHECK(opt_in_shared_memory(kernel, bytes));
        kernel<<<dim3(blocks(2 * view.intermediate), tiles), kThreads, bytes, stream>>>(view, g, h,
                                                                                        top_k, mid);
    });
    FOURBIT_CUDA_CHECK_LAUNCH();
    with_chunks(view.intermediate, [&](auto chunk, auto whole) {
        const auto kernel = grouped_down_kernel<chunk(), whole()>;
        const size_t bytes = nvfp4::staged_bytes(kTileSlots, view.intermediate);
        FOURBIT_CUDA_CHECK(opt_in_shared_memory(kernel, bytes));
        kernel<<<dim3(blocks(view.hidden), tiles), kThreads, bytes, stream>>>(view, g, weights, mid,
                                                                              rows);
    });
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void moe_experts_grouped(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                         const GroupedExperts& experts, Tensor& out) {
    const int n_tokens = static_cast<int>(h.dim(0)), top_k = static_cast<int>(expert_ids.dim(1));
    const int n_slots = n_tokens * top_k, n_experts = static_cast<int>(experts.n_experts());
    const int hidden = static_cast<int>(experts.hidden);
    const int intermediate = static_cast<int>(experts.intermediate);
    const bool gemm = n_slots >= kGemmSlotsPerExpert * n_experts;
    const int tile_slots = gemm ? GemmTile::kTokens : kTileSlots;
    const int max_tiles = (n_slots + tile_slots - 1) / tile_slots + n_experts;
    DeviceScope scope(h.device().index);
    cudaStream_t stream = current_stream();
    Scratch indices(sizeof(int32_t) * (n_slots + 3 * max_tiles + 1));
    Grouping g;
    g.sorted = indices.as<int32_t>();
    g.tile_expert = g.sorted + n_slots;
    g.tile_begin = g.tile_expert + max_tiles;
    g.tile_count = g.tile_begin + max_tiles;
    g.n_tiles = g.tile_count + max_tiles;
    group_kernel<<<1, kPlanThreads, 0, stream>>>(expert_ids.data<int32_t>(), n_slots, n_experts,
                                                 tile_slots, g);
    FOURBIT_CUDA_CHECK_LAUNCH();

    const ExpertsView view{experts.gate_up_codes.data<uint4>(),
                           experts.gate_up_scales.data<uint2>(),
                           experts.down_codes.data<uint4>(),
                           experts.down_scales.data<uint2>(),
                           experts.out_scales.data<float>(),
                           hidden,
                           intermediate};
    Scratch rows(sizeof(float) * static_cast<size_t>(n_slots) * hidden);
    if (gemm) {
        constexpr size_t bytes = nvfp4::gemm::shared_bytes<GemmTile>();
        const auto blocks = [](int rows) {
            return (rows / 16 + GemmTile::kStripes - 1) / GemmTile::kStripes;
        };
        // The GEMM multiplies h as bf16: f32 rows are rounded here, bf16 ones are read as given.
        std::optional<Scratch> rounded;
        const __nv_bfloat16* h_bf16 = bf16_rows(h, rounded);
        Scratch mid(sizeof(__nv_bfloat16) * static_cast<size_t>(n_slots) * intermediate);
        FOURBIT_CUDA_CHECK(opt_in_shared_memory(gemm_gate_up_kernel, bytes));
        gemm_gate_up_kernel<<<dim3(blocks(2 * intermediate), max_tiles), GemmTile::kThreads, bytes,
                              stream>>>(view, g, h_bf16, top_k, mid.as<__nv_bfloat16>());
        FOURBIT_CUDA_CHECK_LAUNCH();
        FOURBIT_CUDA_CHECK(opt_in_shared_memory(gemm_down_kernel, bytes));
        gemm_down_kernel<<<dim3(blocks(hidden), max_tiles), GemmTile::kThreads, bytes, stream>>>(
            view, g, expert_weights.data<float>(), mid.as<__nv_bfloat16>(), rows.as<float>());
        FOURBIT_CUDA_CHECK_LAUNCH();
    } else {
        Scratch mid(sizeof(__nv_bfloat16) * static_cast<size_t>(n_slots) * intermediate);
        const int tiles = std::min(max_tiles, n_slots);
        with_rows(h, [&](const auto* h_rows) {
            launch_grouped(view, g, tiles, h_rows, top_k, expert_weights.data<float>(),
                           mid.as<__nv_bfloat16>(), rows.as<float>());
        });
    }
    if (hidden % 4 == 0 && n_tokens <= 65535 &&
        reinterpret_cast<uintptr_t>(out.data<float>()) % 16 == 0) {
        const int vectors = static_cast<int>(hidden / 4);
        const dim3 grid(static_cast<unsigned>((vectors + 255) / 256),
                        static_cast<unsigned>(n_tokens));
        sum_slots_vector_kernel<<<grid, 256, 0, stream>>>(
            rows.as<float4>(), top_k, vectors, reinterpret_cast<float4*>(out.data<float>()));
    } else {
        sum_slots_kernel<<<1024, 256, 0, stream>>>(rows.as<float>(), n_tokens, top_k, hidden,
                                                   out.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
