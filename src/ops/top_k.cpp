#include "ops/top_k.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

void top_k_rows(const Tensor& x, int64_t k, Tensor& values, Tensor& ids) {
    FOURBIT_ASSERT(x.rank() == 2 && x.dtype() == DType::f32, "top_k_rows: x {} is not f32 rows",
                   shape_text(x.shape()));
    FOURBIT_ASSERT(k >= 1 && k <= x.dim(1) && k <= kTopKMax, "top_k_rows: k = {} of {} values",
                   k, x.dim(1));
    FOURBIT_ASSERT(values.dtype() == DType::f32 && values.shape() == Shape({x.dim(0), k}) &&
                       ids.dtype() == DType::i32 && ids.shape() == Shape({x.dim(0), k}),
                   "top_k_rows: values {} and ids {} for {} rows of {}", shape_text(values.shape()),
                   shape_text(ids.shape()), x.dim(0), k);
    const Device device = op_device("top_k_rows", {&x, &values, &ids});
    if (device.is_cuda()) {
        const int64_t slices = (x.dim(1) + kTopKCudaSlice - 1) / kTopKCudaSlice;
        FOURBIT_ASSERT(slices * k <= kTopKCudaSlice,
                       "top_k_rows: rows of {} values at k = {} exceed the CUDA kernels' {} candidates",
                       x.dim(1), k, kTopKCudaSlice);
#ifdef FOURBIT_CUDA
        return cuda::top_k_rows(x, k, values, ids);
#else
        no_cuda_backend("top_k_rows", device);
#endif
    }
    cpu::top_k_rows(x, k, values, ids);
}

}  // namespace fourbit
