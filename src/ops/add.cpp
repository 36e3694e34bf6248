#include "ops/add.h"

#include "util/error.h"

namespace fourbit {

void add(Tensor& x, const Tensor& y) {
    FOURBIT_ASSERT(x.shape() == y.shape() && x.dtype() == DType::f32 && y.dtype() == DType::f32,
                   "add: {} + {}", shape_text(x.shape()), shape_text(y.shape()));
    cpu::add(x, y);
}

}  // namespace fourbit
