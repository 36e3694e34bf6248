#include "ops/rope.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

namespace {

void check_rope(const Tensor& x, int64_t n_positions, const RopeShape& shape) {
    FOURBIT_ASSERT(x.rank() == 2 && x.dtype() == DType::f32, "rope: x {} must be f32 rows",
                   shape_text(x.shape()));
    FOURBIT_ASSERT(x.dim(1) == shape.n_heads * shape.head_dim, "rope: x {} for {} heads of {}",
                   shape_text(x.shape()), shape.n_heads, shape.head_dim);
    FOURBIT_ASSERT(n_positions == x.dim(0), "rope: positions");
    FOURBIT_ASSERT(shape.rotary_dim % 2 == 0 && shape.rotary_dim <= shape.head_dim,
                   "rope: rotary_dim {}", shape.rotary_dim);
}

}  // namespace

void rope_neox(Tensor& x, std::span<const int32_t> positions, const RopeShape& shape) {
    const Tensor host_positions = Tensor::borrow(
        DType::i32, {static_cast<int64_t>(positions.size())}, positions.data(), nullptr);
    rope_neox(x, host_positions, shape);
}

void rope_neox(Tensor& x, const Tensor& positions, const RopeShape& shape) {
    FOURBIT_ASSERT(positions.rank() == 1 && positions.dtype() == DType::i32,
                   "rope: positions {} must be i32", shape_text(positions.shape()));
    check_rope(x, positions.dim(0), shape);
    const Device device = op_device("rope_neox", {&x, &positions});
    if (device.is_cuda()) {
        if (shape.rotary_dim > cuda::kRopeCudaMaxRotaryDim) {
            fail("rope: rotary_dim {} above the CUDA kernel's {}", shape.rotary_dim,
                 cuda::kRopeCudaMaxRotaryDim);
        }
#ifdef FOURBIT_CUDA
        return cuda::rope_neox(x, positions, shape);
#else
        no_cuda_backend("rope_neox", device);
#endif
    }
    cpu::rope_neox(x, std::span<const int32_t>(positions.data<int32_t>(), positions.dim(0)), shape);
}

}  // namespace fourbit
