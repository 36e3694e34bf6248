#include "ops/random_fill.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

void fill_uniform(Tensor& tensor, float low, float high, uint64_t seed) {
    FOURBIT_ASSERT(tensor.dtype() == DType::f32 || tensor.dtype() == DType::bf16,
                   "fill_uniform: {} tensor", dtype_name(tensor.dtype()));
    FOURBIT_ASSERT(low <= high, "fill_uniform: [{}, {}]", low, high);
    if (tensor.device().is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::fill_uniform(tensor, low, high, seed);
#else
        no_cuda_backend("fill_uniform", tensor.device());
#endif
    }
    cpu::fill_uniform(tensor, low, high, seed);
}

void fill_bytes(Tensor& tensor, uint8_t low, uint8_t high, uint64_t seed) {
    FOURBIT_ASSERT(low <= high, "fill_bytes: [{}, {}]", low, high);
    if (tensor.device().is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::fill_bytes(tensor, low, high, seed);
#else
        no_cuda_backend("fill_bytes", tensor.device());
#endif
    }
    cpu::fill_bytes(tensor, low, high, seed);
}

}  // namespace fourbit
