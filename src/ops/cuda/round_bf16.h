// f32 <-> bf16 on the device: the bf16 operand copy of activations that cuBLAS and the NVFP4 GEMM
// multiply (round to nearest even), the exact three-part split of f32 activations with which a
// bf16 GEMM keeps them whole (small bf16 weights: routers), and activation rows in whichever of
// the two a kernel reads. CUDA builds only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <optional>

#include "ops/cuda/stream.h"
#include "tensor/tensor.h"

namespace fourbit::cuda {

// out[i] = bf16(x[i]) for i < n, on `stream`.
void round_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream);
// out[i] = x[i] (exact) for i < n, on `stream`: bf16 activations for kernels that read f32.
void widen_bf16(const __nv_bfloat16* x, float* out, int64_t n, cudaStream_t stream);
// Activation rows x (f32 or bf16, on the device) in the dtype a kernel reads, on the current
// stream: x's own data when it has that dtype, else a copy made into `storage` (which must
// outlive the kernels that read it) -- widened exactly to f32, or rounded to nearest even to bf16.
const float* f32_rows(const Tensor& x, std::optional<Scratch>& storage);
const __nv_bfloat16* bf16_rows(const Tensor& x, std::optional<Scratch>& storage);
// Calls f with x's rows as their dtype has them: const float* or const __nv_bfloat16*.
template <class F>
void with_rows(const Tensor& x, F&& f) {
    if (x.dtype() == DType::bf16) {
        f(x.data<__nv_bfloat16>());
    } else {
        f(x.data<float>());
    }
}

// x [rows, k] -> out [rows, 3k]: row r is (hi, mid, lo) of x's row r with x = hi + mid + lo
// exactly (each part the bf16 rounding of what the larger ones leave; an f32 significand's 24
// bits are three bf16 ones). On `stream`.
void split_to_bf16x3(const float* x, int64_t rows, int64_t k, __nv_bfloat16* out,
                     cudaStream_t stream);
// w [rows, k] -> out [rows, 3k]: row r is w's row r three times, the weight that multiplies
// split_to_bf16x3's rows. On `stream`.
void repeat_bf16x3(const __nv_bfloat16* w, int64_t rows, int64_t k, __nv_bfloat16* out,
                   cudaStream_t stream);

}  // namespace fourbit::cuda
