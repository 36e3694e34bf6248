#include <algorithm>

#include "ops/cpu/kernels.h"
#include "ops/embedding.h"

namespace fourbit::cpu {

void embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out) {
    const int64_t hidden = table.dim(1);
    for (size_t t = 0; t < ids.size(); ++t) {
        float* row = out.data<float>() + t * hidden;
        if (table.dtype() == DType::bf16) {
            kernels().bf16_to_f32(table.data<uint16_t>() + ids[t] * hidden, row, hidden);
        } else {
            const float* source = table.data<float>() + ids[t] * hidden;
            std::copy(source, source + hidden, row);
        }
    }
}

}  // namespace fourbit::cpu
