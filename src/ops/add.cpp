#include "ops/add.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

void add(Tensor& x, const Tensor& y) {
    FOURBIT_ASSERT(x.shape() == y.shape() && x.dtype() == DType::f32 && y.dtype() == DType::f32,
                   "add: {} + {}", shape_text(x.shape()), shape_text(y.shape()));
    const Device device = op_device("add", {&x, &y});
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::add(x, y);
#else
        no_cuda_backend("add", device);
#endif
    }
    cpu::add(x, y);
}

}  // namespace fourbit
