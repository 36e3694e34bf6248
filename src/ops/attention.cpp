#include "ops/attention.h"

#include "util/error.h"

namespace fourbit {

void attention_causal(const Tensor& q, const Tensor& keys, const Tensor& values,
                      const AttentionShape& shape, Tensor& out) {
    const int64_t q_width = shape.n_heads * shape.head_dim;
    const int64_t kv_width = shape.n_kv_heads * shape.head_dim;
    FOURBIT_ASSERT(shape.n_heads % shape.n_kv_heads == 0, "attention: {} heads over {} kv heads",
                   shape.n_heads, shape.n_kv_heads);
    FOURBIT_ASSERT(q.rank() == 2 && q.dim(1) == q_width && out.shape() == q.shape(),
                   "attention: q {} out {}", shape_text(q.shape()), shape_text(out.shape()));
    FOURBIT_ASSERT(keys.rank() == 2 && keys.dim(1) == kv_width && values.shape() == keys.shape(),
                   "attention: keys {} values {}", shape_text(keys.shape()),
                   shape_text(values.shape()));
    FOURBIT_ASSERT(keys.dim(0) >= q.dim(0), "attention: {} queries but {} cached positions",
                   q.dim(0), keys.dim(0));
    FOURBIT_ASSERT(q.dtype() == DType::f32 && keys.dtype() == DType::f32 &&
                       values.dtype() == DType::f32 && out.dtype() == DType::f32,
                   "attention: f32 only");
    cpu::attention_causal(q, keys, values, shape, out);
}

}  // namespace fourbit
