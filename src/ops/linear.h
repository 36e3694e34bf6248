// linear: y = x @ W^T, the projection every layer is made of.
//   x  [n_tokens, k] f32
//   W  [n, k] f32, bf16, or f8_e4m3 with a block scale (MiniMax's FP8: `weight_scale_inv`
//      [ceil(n / block_rows), ceil(k / block_cols)] f32, a multiplier despite its name)
//   y  [n_tokens, n] f32, accumulated in f32
#pragma once

#include "tensor/tensor.h"

namespace fourbit {

struct LinearWeight {
    Tensor weight;       // [n, k]
    Tensor block_scale;  // f8_e4m3 only: [ceil(n / block_rows), ceil(k / block_cols)] f32
    int64_t block_rows = 0;
    int64_t block_cols = 0;

    int64_t rows() const { return weight.dim(0); }
    int64_t cols() const { return weight.dim(1); }
};

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y);

namespace cpu {
void linear(const Tensor& x, const LinearWeight& weight, Tensor& y);
}

}  // namespace fourbit
