#include "ops/embedding.h"

#include "util/error.h"

namespace fourbit {

void embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out) {
    FOURBIT_ASSERT(table.rank() == 2 && out.rank() == 2 && out.dim(1) == table.dim(1) &&
                       out.dim(0) == static_cast<int64_t>(ids.size()),
                   "embedding: table {} out {} for {} ids", shape_text(table.shape()),
                   shape_text(out.shape()), ids.size());
    FOURBIT_ASSERT(table.dtype() == DType::f32 || table.dtype() == DType::bf16,
                   "embedding: table dtype {}", dtype_name(table.dtype()));
    for (int32_t id : ids) {
        FOURBIT_ASSERT(id >= 0 && id < table.dim(0), "embedding: id {} outside [0, {})", id,
                       table.dim(0));
    }
    cpu::embedding(ids, table, out);
}

}  // namespace fourbit
