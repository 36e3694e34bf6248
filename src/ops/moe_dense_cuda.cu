// The MoE experts on CUDA for dense (bf16 or f32) weights: an NVFP4 checkpoint's BF16 first and
// last layers, and BF16 checkpoints. Not the hot path: plain warp-per-row dot products in f32
// (h as the CPU takes it, f32), one kernel for gate/up + SiLU over every routed slot, one for
// down + the weighted sum in slot order, both reading the routing on the device.
#include <cuda_bf16.h>

#include <optional>

#include "ops/cuda/round_bf16.h"
#include "ops/cuda/stream.h"
#include "ops/moe.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kWarps = 8;  // rows per CTA, one warp each

__device__ __forceinline__ float as_float(float w) { return w; }
__device__ __forceinline__ float as_float(__nv_bfloat16 w) { return __bfloat162float(w); }

template <typename W>
__device__ __forceinline__ float warp_dot(const W* w, const float* x, int n) {
    const int lane = threadIdx.x & 31;
    float sum = 0.0f;
    for (int i = lane; i < n; i += 32) sum += as_float(w[i]) * x[i];
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    return sum;
}

// grid (ceil(I / kWarps), T * k): mid[slot, r] = silu(gate_e[r] . h[t]) * (up_e[r] . h[t]).
template <typename W>
__global__ void dense_gate_up_kernel(const W* gate_up, const int32_t* ids, const float* h,
                                     int hidden, int intermediate, int top_k, float* mid) {
    const int slot = blockIdx.y, t = slot / top_k;
    const int r = blockIdx.x * kWarps + (threadIdx.x >> 5);
    if (r >= intermediate) return;
    const W* expert = gate_up + static_cast<int64_t>(ids[slot]) * 2 * intermediate * hidden;
    const float* x = h + static_cast<int64_t>(t) * hidden;
    const float gate = warp_dot(expert + static_cast<int64_t>(r) * hidden, x, hidden);
    const float up = warp_dot(expert + static_cast<int64_t>(intermediate + r) * hidden, x, hidden);
    if ((threadIdx.x & 31) == 0) {
        mid[static_cast<int64_t>(slot) * intermediate + r] = gate / (1.0f + expf(-gate)) * up;
    }
}

// grid (ceil(H / kWarps), T): out[t, r] = sum over slots j, in order, of
// weight[t, j] * (down_e[r] . mid[t, j]).
template <typename W>
__global__ void dense_down_kernel(const W* down, const int32_t* ids, const float* weights,
                                  const float* mid, int hidden, int intermediate, int top_k,
                                  float* out) {
    const int t = blockIdx.y;
    const int r = blockIdx.x * kWarps + (threadIdx.x >> 5);
    if (r >= hidden) return;
    float total = 0.0f;
    for (int j = 0; j < top_k; ++j) {
        const int slot = t * top_k + j;
        const W* row = down + (static_cast<int64_t>(ids[slot]) * hidden + r) * intermediate;
        total += weights[slot] * warp_dot(row, mid + static_cast<int64_t>(slot) * intermediate,
                                          intermediate);
    }
    if ((threadIdx.x & 31) == 0) out[static_cast<int64_t>(t) * hidden + r] = total;
}

template <typename W>
void launch(const float* h, const Tensor& ids, const Tensor& weights, const GroupedExperts& experts,
            Tensor& out) {
    const int n_tokens = static_cast<int>(out.dim(0)), top_k = static_cast<int>(ids.dim(1));
    const int hidden = static_cast<int>(experts.hidden);
    const int intermediate = static_cast<int>(experts.intermediate);
    cudaStream_t stream = current_stream();
    Scratch mid(static_cast<size_t>(n_tokens) * top_k * intermediate * sizeof(float));
    const dim3 gate_up_grid((intermediate + kWarps - 1) / kWarps, n_tokens * top_k);
    dense_gate_up_kernel<W><<<gate_up_grid, 32 * kWarps, 0, stream>>>(
        experts.gate_up_dense.data<W>(), ids.data<int32_t>(), h, hidden, intermediate, top_k,
        mid.as<float>());
    FOURBIT_CUDA_CHECK_LAUNCH();
    const dim3 down_grid((hidden + kWarps - 1) / kWarps, n_tokens);
    dense_down_kernel<W><<<down_grid, 32 * kWarps, 0, stream>>>(
        experts.down_dense.data<W>(), ids.data<int32_t>(), weights.data<float>(),
        mid.as<float>(), hidden, intermediate, top_k, out.data<float>());
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace

void moe_experts_dense(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                       const GroupedExperts& experts, Tensor& out) {
    DeviceScope scope(h.device().index);
    // Dense experts multiply h in f32, exactly: bf16 rows are widened first.
    std::optional<Scratch> widened;
    const float* rows = f32_rows(h, widened);
    if (experts.gate_up_dense.dtype() == DType::bf16) {
        launch<__nv_bfloat16>(rows, expert_ids, expert_weights, experts, out);
    } else {
        launch<float>(rows, expert_ids, expert_weights, experts, out);
    }
}

}  // namespace fourbit::cuda
