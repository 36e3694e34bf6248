// top_k_rows: the most likely tokens of each row of logits, chosen where the logits are, so that
// a decode step on a device sends back k values and ids per row instead of the vocabulary's
// logits. Greedy decoding takes the first; a sampler whose top_k is at most k samples exactly
// as from the whole row (its kept set lies among them: runtime/sampler.h).
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace fourbit {

// The CUDA kernels' bounds: k, and ceil(n / kTopKCudaSlice) k <= kTopKCudaSlice (rows of up to
// 262,144 values at k = 64).
inline constexpr int64_t kTopKMax = 64;
inline constexpr int64_t kTopKCudaSlice = 4096;

// values[r] and ids[r]: row r's k largest values and their indices, largest first, equal values
// by lower index (the order std::partial_sort gives with that comparison); ids[r] all -1 (and
// values[r] unspecified) where the row holds a NaN or an infinity. x [rows, n] f32, 1 <= k <= min(n, kTopKMax), values
// [rows, k] f32, ids [rows, k] i32.
void top_k_rows(const Tensor& x, int64_t k, Tensor& values, Tensor& ids);

namespace cpu {
void top_k_rows(const Tensor& x, int64_t k, Tensor& values, Tensor& ids);
}
namespace cuda {
void top_k_rows(const Tensor& x, int64_t k, Tensor& values, Tensor& ids);
}

}  // namespace fourbit
