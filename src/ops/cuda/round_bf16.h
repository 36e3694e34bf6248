// f32 <-> bf16 on the device: the bf16 operand copy of activations that cuBLAS and the NVFP4
// GEMM multiply (round to nearest even), and the exact f32 copy of a small bf16 weight that an
// f32 GEMM multiplies. CUDA builds only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fourbit::cuda {

// out[i] = bf16(x[i]) for i < n, on `stream`.
void round_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream);
// out[i] = float(x[i]) for i < n, on `stream` (exact).
void widen_bf16(const __nv_bfloat16* x, float* out, int64_t n, cudaStream_t stream);

}  // namespace fourbit::cuda
