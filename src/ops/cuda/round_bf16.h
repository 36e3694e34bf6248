// f32 -> bf16 (round to nearest even) on the device: the bf16 operand copy of activations that
// cuBLAS and the NVFP4 GEMM multiply. CUDA builds only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fourbit::cuda {

// out[i] = bf16(x[i]) for i < n, on `stream`.
void round_to_bf16(const float* x, __nv_bfloat16* out, int64_t n, cudaStream_t stream);

}  // namespace fourbit::cuda
