#include "ops/embedding.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

namespace {

void check_embedding(int64_t n_ids, const Tensor& table, const Tensor& out) {
    FOURBIT_ASSERT(table.rank() == 2 && out.rank() == 2 && out.dim(1) == table.dim(1) &&
                       out.dim(0) == n_ids,
                   "embedding: table {} out {} for {} ids", shape_text(table.shape()),
                   shape_text(out.shape()), n_ids);
    FOURBIT_ASSERT(table.dtype() == DType::f32 || table.dtype() == DType::bf16,
                   "embedding: table dtype {}", dtype_name(table.dtype()));
    FOURBIT_ASSERT(out.dtype() == DType::f32, "embedding: out dtype {}", dtype_name(out.dtype()));
}

}  // namespace

void embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out) {
    const Tensor host_ids =
        Tensor::borrow(DType::i32, {static_cast<int64_t>(ids.size())}, ids.data(), nullptr);
    embedding(host_ids, table, out);
}

void embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
    FOURBIT_ASSERT(ids.rank() == 1 && ids.dtype() == DType::i32, "embedding: ids {} must be i32",
                   shape_text(ids.shape()));
    check_embedding(ids.dim(0), table, out);
    const Device device = op_device("embedding", {&ids, &table, &out});
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::embedding(ids, table, out);
#else
        no_cuda_backend("embedding", device);
#endif
    }
    const std::span<const int32_t> host_ids(ids.data<int32_t>(), ids.dim(0));
    for (int32_t id : host_ids) {
        FOURBIT_ASSERT(id >= 0 && id < table.dim(0), "embedding: id {} outside [0, {})", id,
                       table.dim(0));
    }
    cpu::embedding(host_ids, table, out);
}

}  // namespace fourbit
