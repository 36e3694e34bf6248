// rms_norm: y = x / sqrt(mean(x^2) + eps) * w, per row, in f32. MiniMax-M2 uses it four ways:
// before attention, before the MoE, at the end, and as its "per_layer" QK-norm, where one row is
// a token's whole q (or k) vector across all heads, not one head.
//   x [n_rows, d] f32    y [n_rows, d] f32 (may be x), or bf16 (rounded to nearest even: the
//   input of an NVFP4 linear, ops/linear.h's linear_activation_dtype)    w [d] f32 or bf16
#pragma once

#include "tensor/tensor.h"

namespace fourbit {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);

// add_rms_norm: x += r, then y = rms_norm(x) (the residual stream's update and the next
// block's normed input; one kernel on CUDA). y (f32 or bf16) must not be x or r. With
// y_rounded (bf16, y's shape), y is f32 and y_rounded the same values rounded to nearest even,
// written by the same kernel: the MoE's router reads h exactly and its NVFP4 experts in bf16.
void add_rms_norm(Tensor& x, const Tensor& r, const Tensor& weight, float eps, Tensor& y,
                  Tensor* y_rounded = nullptr);

namespace cpu {
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);
}
namespace cuda {
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y);
void add_rms_norm(Tensor& x, const Tensor& r, const Tensor& weight, float eps, Tensor& y,
                  Tensor* y_rounded);
}

}  // namespace fourbit
