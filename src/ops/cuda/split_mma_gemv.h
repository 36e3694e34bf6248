// A GEMV of a large bf16 weight (an lm_head) for batched decode that keeps x whole, as the f32
// FMA GEMV does, on the tensor cores: x is split exactly into three bf16 parts (round_bf16.h:
// split_to_bf16x3), every product of a part and a bf16 weight is exact in f32, and the mma adds
// them in f32. The f32 FMA GEMV (exact_dot.cuh) is bound by its FMAs and x loads from 2 tokens
// on (the lm_head at 8 tokens ran at 45% of the read bandwidth). CUDA builds only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace fourbit::cuda {

// y [m, n] = parts W^T summed over the parts: W [n, k] bf16 rows, parts [m, 3k] (each row the
// hi, mid and lo parts of an f32 row); k a multiple of 32, rows 16-byte aligned. The weights
// are read once per 32 tokens. A token's sums are added in one order for every m of 2 to 16,
// and in another for 17 to 64 (two forms of the kernel). On `stream`.
void split_mma_gemv(const __nv_bfloat16* w, const __nv_bfloat16* parts, float* y, int m, int n,
                    int k, cudaStream_t stream);

}  // namespace fourbit::cuda
