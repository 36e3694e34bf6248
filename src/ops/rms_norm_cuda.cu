// rms_norm and add_rms_norm on CUDA: one CTA per row (ops/cuda/norm_rope.cuh's arithmetic: the
// sum of squares in double, as the CPU reference does, so both devices compute the same scale).
// A row of up to kMaxRegisterWidth elements touches global memory once per value: every load
// (the weights' too) is issued at the start, the row stays in registers through one reduction,
// and each output is written once (f32, bf16 for an NVFP4 linear, or both). Wider rows take the
// loop form, which reads the row again. Both let the next kernel start at once: a decode step's
// q/k/v projection, launched with PDL, streams its weights while the norm runs.
#include <type_traits>

#include "ops/cuda/norm_rope.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/stream.h"
#include "ops/rms_norm.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

// The register kernels hold kPerThread elements a thread: thread t the elements t,
// t + kNormThreads, ... (rms_scale's partition), the j-th in slot j. kPerThread is the smallest
// of 1, 2, 4, 8 that holds the row (M2's hidden size, 3,072, takes 4) rather than one bound for
// every width: ptxas (CUDA 13.0) issues all the loads of up to 4 slots before their first use,
// but of 8 it defers some (the bf16 weights' until after the sum, which waits for the row: a
// second trip to memory), a cost left to rows wider than 4,096.
constexpr int64_t kMaxRegisterWidth = 8 * kNormThreads;

// Calls launch(std::integral_constant<int, n>) with that n, for d <= kMaxRegisterWidth.
template <typename Launch>
void with_per_thread(int64_t d, Launch&& launch) {
    if (d <= kNormThreads) {
        launch(std::integral_constant<int, 1>{});
    } else if (d <= 2 * kNormThreads) {
        launch(std::integral_constant<int, 2>{});
    } else if (d <= 4 * kNormThreads) {
        launch(std::integral_constant<int, 4>{});
    } else {
        launch(std::integral_constant<int, 8>{});
    }
}

template <int kPerThread, typename Weight, typename Out>
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const float* x, const Weight* w, float eps, int d, Out y) {
    allow_dependents();  // the next projection's weights start loading (ops/cuda/pdl.cuh)
    __shared__ RmsShared reduction;
    const float* row = x + blockIdx.x * int64_t{d};
    float xs[kPerThread];
    Weight ws[kPerThread];
    load_slots(row, d, xs);
    load_slots(w, d, ws);
    const float scale = rms_scale_one(sum_of_squares(xs, d), d, eps, reduction);
    // y may be x: every element was read into registers before the reduction's barriers.
    store_normed(xs, scale, ws, d, y + blockIdx.x * int64_t{d});
}

// x += r, then y = rms_norm(x): the sum is over the updated x, so the scale is the one the two
// ops in sequence compute.
template <int kPerThread, typename Weight, typename Out>
__global__ void __launch_bounds__(kNormThreads)
    add_rms_norm_kernel(float* x, const float* r, const Weight* w, float eps, int d, Out y) {
    allow_dependents();
    __shared__ RmsShared reduction;
    float* row = x + blockIdx.x * int64_t{d};
    add_rms_norm_row<kPerThread>(row, r + blockIdx.x * int64_t{d}, w, eps, d, row,
                                 y + blockIdx.x * int64_t{d}, reduction);
}

// The two kernels for rows wider than kMaxRegisterWidth: rms_scale reads the row from global
// memory, and the output loop reads it again.
template <typename Weight, typename Out>
__global__ void wide_rms_norm_kernel(const float* x, const Weight* w, float eps, int64_t d, Out y) {
    allow_dependents();
    __shared__ double partial[kNormWarps];
    const float* row = x + blockIdx.x * d;
    const Out out = y + blockIdx.x * d;
    const float scale = rms_scale(row, d, eps, partial);
    // y may be x: every element was read into the sum before rms_scale's barriers.
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) {
        store_norm_output(out, i, row[i] * scale * norm_weight(w, i));
    }
}

template <typename Weight, typename Out>
__global__ void wide_add_rms_norm_kernel(float* x, const float* r, const Weight* w, float eps,
                                         int64_t d, Out y) {
    allow_dependents();
    __shared__ double partial[kNormWarps];
    float* row = x + blockIdx.x * d;
    const float* residual = r + blockIdx.x * d;
    // Each thread sums the elements it wrote: the scale of the two ops in sequence.
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) row[i] += residual[i];
    const float scale = rms_scale(row, d, eps, partial);
    const Out out = y + blockIdx.x * d;
    for (int64_t i = threadIdx.x; i < d; i += kNormThreads) {
        store_norm_output(out, i, row[i] * scale * norm_weight(w, i));
    }
}

// Calls launch(w, y) with the weight and output pointers as their dtypes say; with y_rounded,
// the output is both (F32AndBf16Rows).
template <typename Launch>
void with_weight_and_output(const Tensor& weight, Tensor& y, Tensor* y_rounded, Launch&& launch) {
    auto with_output = [&](const auto* w) {
        if (y_rounded != nullptr) {
            launch(w, F32AndBf16Rows{y.data<float>(), y_rounded->data<__nv_bfloat16>()});
        } else if (y.dtype() == DType::bf16) {
            launch(w, y.data<__nv_bfloat16>());
        } else {
            launch(w, y.data<float>());
        }
    };
    with_norm_weight(weight, with_output);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    if (rows == 0) return;
    DeviceScope scope(x.device().index);
    const unsigned blocks = static_cast<unsigned>(rows);
    with_weight_and_output(weight, y, nullptr, [&](const auto* w, auto out) {
        if (d > kMaxRegisterWidth) {
            wide_rms_norm_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(x.data<float>(), w,
                                                                                eps, d, out);
            return;
        }
        with_per_thread(d, [&](auto per_thread) {
            constexpr int n = decltype(per_thread)::value;
            rms_norm_kernel<n><<<blocks, kNormThreads, 0, current_stream()>>>(
                x.data<float>(), w, eps, static_cast<int>(d), out);
        });
    });
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void add_rms_norm(Tensor& x, const Tensor& r, const Tensor& weight, float eps, Tensor& y,
                  Tensor* y_rounded) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    if (rows == 0) return;
    DeviceScope scope(x.device().index);
    const unsigned blocks = static_cast<unsigned>(rows);
    with_weight_and_output(weight, y, y_rounded, [&](const auto* w, auto out) {
        if (d > kMaxRegisterWidth) {
            wide_add_rms_norm_kernel<<<blocks, kNormThreads, 0, current_stream()>>>(
                x.data<float>(), r.data<float>(), w, eps, d, out);
            return;
        }
        with_per_thread(d, [&](auto per_thread) {
            constexpr int n = decltype(per_thread)::value;
            add_rms_norm_kernel<n><<<blocks, kNormThreads, 0, current_stream()>>>(
                x.data<float>(), r.data<float>(), w, eps, static_cast<int>(d), out);
        });
    });
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
