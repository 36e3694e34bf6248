// add: x += y elementwise (the residual stream), f32, same shapes.
#pragma once

#include "tensor/tensor.h"

namespace fourbit {

void add(Tensor& x, const Tensor& y);

namespace cpu {
void add(Tensor& x, const Tensor& y);
}
namespace cuda {
void add(Tensor& x, const Tensor& y);
}

}  // namespace fourbit
