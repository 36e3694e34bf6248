#include "ops/argmax.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

void argmax_rows(const Tensor& x, Tensor& ids) {
    FOURBIT_ASSERT(x.rank() == 2 && x.dtype() == DType::f32 && ids.rank() == 1 &&
                       ids.dtype() == DType::i32 && ids.dim(0) == x.dim(0),
                   "argmax_rows: ids {} for x {}", shape_text(ids.shape()), shape_text(x.shape()));
    FOURBIT_ASSERT(x.dim(1) > 0, "argmax_rows: rows of no values");
    const Device device = op_device("argmax_rows", {&x, &ids});
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::argmax_rows(x, ids);
#else
        no_cuda_backend("argmax_rows", device);
#endif
    }
    cpu::argmax_rows(x, ids);
}

}  // namespace fourbit
