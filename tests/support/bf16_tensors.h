// Host tensors to and from bf16 for the tests of what a bf16 store keeps: rounding to nearest
// even, as the project's stores do (tensor/numeric.h).
#pragma once

#include "tensor/numeric.h"
#include "tensor/tensor.h"

namespace fourbit::test_support {

// A host f32 tensor in `dtype`: itself for f32, each element rounded for bf16.
inline Tensor as_dtype(const Tensor& f32, DType dtype) {
    if (dtype == DType::f32) return f32;
    Tensor out = Tensor::zeros(DType::bf16, f32.shape());
    for (int64_t i = 0; i < f32.numel(); ++i) {
        out.data<uint16_t>()[i] = f32_to_bf16(f32.data<float>()[i]);
    }
    return out;
}

// A host f32 or bf16 tensor as f32.
inline Tensor widened(const Tensor& host) {
    if (host.dtype() == DType::f32) return host;
    Tensor out = Tensor::zeros(DType::f32, host.shape());
    for (int64_t i = 0; i < host.numel(); ++i) {
        out.data<float>()[i] = bf16_to_f32(host.data<uint16_t>()[i]);
    }
    return out;
}

}  // namespace fourbit::test_support
