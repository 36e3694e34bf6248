// embedding on CUDA: one CTA per token copies (bf16: widens) its table row.
#include <cmath>

#include "ops/cuda/stream.h"
#include "ops/embedding.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

template <typename Table>
__device__ __forceinline__ float table_value(const Table* row, int64_t i);
template <>
__device__ __forceinline__ float table_value<float>(const float* row, int64_t i) {
    return row[i];
}
template <>
__device__ __forceinline__ float table_value<uint16_t>(const uint16_t* row, int64_t i) {
    return __uint_as_float(static_cast<uint32_t>(row[i]) << 16);
}

template <typename Table>
__global__ void embedding_kernel(const int32_t* ids, const Table* table, int64_t vocab,
                                 int64_t hidden, float* out) {
    const int32_t id = ids[blockIdx.x];
    float* row = out + blockIdx.x * hidden;
    const bool valid = id >= 0 && id < vocab;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
        row[i] = valid ? table_value(table + id * hidden, i) : NAN;
    }
}

}  // namespace

void embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
    if (ids.dim(0) == 0) return;
    DeviceScope scope(table.device().index);
    const unsigned blocks = static_cast<unsigned>(ids.dim(0));
    if (table.dtype() == DType::bf16) {
        embedding_kernel<<<blocks, 256, 0, current_stream()>>>(
            ids.data<int32_t>(), table.data<uint16_t>(), table.dim(0), table.dim(1), out.data<float>());
    } else {
        embedding_kernel<<<blocks, 256, 0, current_stream()>>>(
            ids.data<int32_t>(), table.data<float>(), table.dim(0), table.dim(1), out.data<float>());
    }
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
