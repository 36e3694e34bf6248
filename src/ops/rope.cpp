#include "ops/rope.h"

#include "util/error.h"

namespace fourbit {

void rope_neox(Tensor& x, std::span<const int32_t> positions, const RopeShape& shape) {
    FOURBIT_ASSERT(x.rank() == 2 && x.dtype() == DType::f32, "rope: x {} must be f32 rows",
                   shape_text(x.shape()));
    FOURBIT_ASSERT(x.dim(1) == shape.n_heads * shape.head_dim, "rope: x {} for {} heads of {}",
                   shape_text(x.shape()), shape.n_heads, shape.head_dim);
    FOURBIT_ASSERT(static_cast<int64_t>(positions.size()) == x.dim(0), "rope: positions");
    FOURBIT_ASSERT(shape.rotary_dim % 2 == 0 && shape.rotary_dim <= shape.head_dim,
                   "rope: rotary_dim {}", shape.rotary_dim);
    cpu::rope_neox(x, positions, shape);
}

}  // namespace fourbit
