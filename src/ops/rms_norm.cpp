#include "ops/rms_norm.h"

#include "ops/add.h"
#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
    FOURBIT_ASSERT(x.rank() == 2 && y.shape() == x.shape(), "rms_norm: x {} y {}",
                   shape_text(x.shape()), shape_text(y.shape()));
    FOURBIT_ASSERT(x.dtype() == DType::f32 && (y.dtype() == DType::f32 || y.dtype() == DType::bf16),
                   "rms_norm: x {} y {} (f32 rows, f32 or bf16 out)", dtype_name(x.dtype()),
                   dtype_name(y.dtype()));
    FOURBIT_ASSERT(weight.rank() == 1 && weight.dim(0) == x.dim(1), "rms_norm: w {} for x {}",
                   shape_text(weight.shape()), shape_text(x.shape()));
    FOURBIT_ASSERT(weight.dtype() == DType::f32 || weight.dtype() == DType::bf16,
                   "rms_norm: weight dtype {}", dtype_name(weight.dtype()));
    const Device device = op_device("rms_norm", {&x, &weight, &y});
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::rms_norm(x, weight, eps, y);
#else
        no_cuda_backend("rms_norm", device);
#endif
    }
    cpu::rms_norm(x, weight, eps, y);
}

void add_rms_norm(Tensor& x, const Tensor& r, const Tensor& weight, float eps, Tensor& y,
                  Tensor* y_rounded) {
    FOURBIT_ASSERT(r.shape() == x.shape() && r.dtype() == DType::f32, "add_rms_norm: x {} r {}",
                   shape_text(x.shape()), shape_text(r.shape()));
    FOURBIT_ASSERT(y.raw() != x.raw() && y.raw() != r.raw(), "add_rms_norm: y aliases x or r");
    if (y_rounded != nullptr) {
        FOURBIT_ASSERT(y.dtype() == DType::f32 && y_rounded->dtype() == DType::bf16 &&
                           y_rounded->shape() == y.shape() && y_rounded->raw() != x.raw() &&
                           y_rounded->raw() != r.raw(),
                       "add_rms_norm: y {} {} and its rounding {} {}", shape_text(y.shape()),
                       dtype_name(y.dtype()), shape_text(y_rounded->shape()),
                       dtype_name(y_rounded->dtype()));
    }
    // y_rounded, when given, must be where the rest is (y stands in for it otherwise).
    const Device device =
        op_device("add_rms_norm", {&x, &r, &weight, &y, y_rounded != nullptr ? y_rounded : &y});
    if (device.is_cuda()) {
        FOURBIT_ASSERT(x.rank() == 2 && y.shape() == x.shape() && x.dtype() == DType::f32 &&
                           (y.dtype() == DType::f32 || y.dtype() == DType::bf16) &&
                           weight.rank() == 1 && weight.dim(0) == x.dim(1) &&
                           (weight.dtype() == DType::f32 || weight.dtype() == DType::bf16),
                       "add_rms_norm: x {} y {} w {}", shape_text(x.shape()), shape_text(y.shape()),
                       shape_text(weight.shape()));
#ifdef FOURBIT_CUDA
        return cuda::add_rms_norm(x, r, weight, eps, y, y_rounded);
#else
        no_cuda_backend("add_rms_norm", device);
#endif
    }
    add(x, r);
    rms_norm(x, weight, eps, y);
    if (y_rounded != nullptr) rms_norm(x, weight, eps, *y_rounded);
}

}  // namespace fourbit
