// top_k_rows on CUDA in two passes. Pass 1: a CTA per slice of up to 4,096 values of a row picks
// the slice's k best; pass 2: a CTA per row picks the k best of its slices' (at most 64 x 64)
// candidates. A pick is k rounds of a CTA-wide arg-max over what is left (larger value, then
// lower index: the total order the contract names, so the result does not depend on how the
// partial results meet). A row's vocabulary of 200,064 reads in 49 CTAs at once.
#include <climits>
#include <cmath>

#include "ops/cuda/stream.h"
#include "ops/top_k.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kPerThread = 4;
constexpr int kSlice = kThreads * kPerThread;  // values per pass-1 CTA; pass 2's candidates
static_assert(kSlice == kTopKCudaSlice, "the front checks the CUDA kernels' limit");

struct Item {
    float value;
    int index;
};

// The empty item: below every value, -inf included (a lower index wins among equals).
__device__ __forceinline__ Item nothing() { return {-INFINITY, INT_MAX}; }

__device__ __forceinline__ bool before(const Item& a, const Item& b) {
    return a.value > b.value || (a.value == b.value && a.index < b.index);
}

__device__ __forceinline__ Item best_of_warp(Item best) {
    for (int offset = 16; offset > 0; offset /= 2) {
        const Item other{__shfl_xor_sync(0xffffffffu, best.value, offset),
                         __shfl_xor_sync(0xffffffffu, best.index, offset)};
        if (before(other, best)) best = other;
    }
    return best;
}

// The k best of `count` <= kSlice items (at(i) gives item i) into values/ids, best first. A NaN
// item is never picked (nothing is `before` it or after it); its row is flagged elsewhere.
template <typename At>
__device__ __forceinline__ void pick_best(int count, int k, At at, float* values, int32_t* ids) {
    __shared__ Item warp_best[kThreads / 32];
    __shared__ Item winner;
    Item mine[kPerThread];
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
        const int i = threadIdx.x + j * kThreads;
        mine[j] = i < count ? at(i) : nothing();
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int round = 0; round < k; ++round) {
        Item best = nothing();
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            if (before(mine[j], best)) best = mine[j];
        }
        best = best_of_warp(best);
        if (lane == 0) warp_best[warp] = best;
        __syncthreads();
        if (warp == 0) {
            best = best_of_warp(warp_best[lane]);
            if (lane == 0) {
                winner = best;
                values[round] = best.value;
                ids[round] = best.index;
            }
        }
        __syncthreads();
        const Item taken = winner;  // read by all before the next round's first barrier
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) {
            if (mine[j].index == taken.index) mine[j] = nothing();
        }
    }
}

// Pass 1, grid (slices, rows): [row][slice][k] candidates and whether the slice is all finite.
__global__ void __launch_bounds__(kThreads)
    slice_kernel(const float* x, int64_t n, int k, float* values, int32_t* ids, int* finite) {
    const float* row = x + static_cast<int64_t>(blockIdx.y) * n;
    const int64_t begin = static_cast<int64_t>(blockIdx.x) * kSlice;
    const int count = static_cast<int>(n - begin < kSlice ? n - begin : kSlice);
    bool all_finite = true;
    for (int i = threadIdx.x; i < count; i += kThreads) all_finite = all_finite && isfinite(row[begin + i]);
    const int slice = static_cast<int>(blockIdx.y * gridDim.x + blockIdx.x);
    const int finite_slice = __syncthreads_and(all_finite);
    if (threadIdx.x == 0) finite[slice] = finite_slice;
    pick_best(count, k, [&](int i) { return Item{row[begin + i], static_cast<int>(begin + i)}; },
              values + static_cast<int64_t>(slice) * k, ids + static_cast<int64_t>(slice) * k);
}

// Pass 2, one CTA per row: the k best of its slices' candidates; ids -1 for a row with a
// non-finite value.
__global__ void __launch_bounds__(kThreads)
    row_kernel(const float* candidate_values, const int32_t* candidate_ids, const int* finite,
               int slices, int k, float* values, int32_t* ids) {
    const int64_t first = static_cast<int64_t>(blockIdx.x) * slices;
    bool all_finite = true;
    for (int s = threadIdx.x; s < slices; s += kThreads) all_finite = all_finite && finite[first + s] != 0;
    const bool row_finite = __syncthreads_and(all_finite) != 0;
    const float* row_values = candidate_values + first * k;
    const int32_t* row_ids = candidate_ids + first * k;
    float* out_values = values + static_cast<int64_t>(blockIdx.x) * k;
    int32_t* out_ids = ids + static_cast<int64_t>(blockIdx.x) * k;
    pick_best(slices * k, k, [&](int i) { return Item{row_values[i], row_ids[i]}; }, out_values, out_ids);
    if (!row_finite) {
        __syncthreads();
        for (int j = threadIdx.x; j < k; j += kThreads) out_ids[j] = -1;
    }
}

}  // namespace

void top_k_rows(const Tensor& x, int64_t k, Tensor& values, Tensor& ids) {
    const int64_t rows = x.dim(0), n = x.dim(1);
    if (rows == 0) return;
    const int64_t slices = (n + kSlice - 1) / kSlice;
    DeviceScope scope(x.device().index);
    cudaStream_t stream = current_stream();
    const size_t candidates = static_cast<size_t>(rows * slices * k);
    Scratch candidate_values(candidates * sizeof(float)), candidate_ids(candidates * sizeof(int32_t));
    Scratch finite(static_cast<size_t>(rows * slices) * sizeof(int));
    slice_kernel<<<dim3(static_cast<unsigned>(slices), static_cast<unsigned>(rows)), kThreads, 0, stream>>>(
        x.data<float>(), n, static_cast<int>(k), candidate_values.as<float>(), candidate_ids.as<int32_t>(),
        finite.as<int>());
    FOURBIT_CUDA_CHECK_LAUNCH();
    row_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        candidate_values.as<float>(), candidate_ids.as<int32_t>(), finite.as<int>(),
        static_cast<int>(slices), static_cast<int>(k), values.data<float>(), ids.data<int32_t>());
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
