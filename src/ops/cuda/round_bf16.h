// f32 <-> bf16 on the device: the bf16 operand copy of activations that cuBLAS and the NVFP4 GEMM
// multiply (round to nearest even), and the exact three-part split of f32 activations with which
// a bf16 GEMM keeps them whole (small bf16 weights: routers). CUDA builds only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fourbit::cuda {

// out[i] = bf16(x[i]) for i < n, on `stream`.
void round_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream);
// out[i] = x[i] (exact) for i < n, on `stream`: bf16 activations for kernels that read f32.
void widen_bf16(const __nv_bfloat16* x, float* out, int64_t n, cudaStream_t stream);
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
