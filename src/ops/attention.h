// attention_causal: softmax attention of one sequence's new queries over its cached keys and
// values, causal, grouped-query (query head h reads kv head h / (n_heads / n_kv_heads)).
//   q      [n_new, n_heads * head_dim] f32     (already normed and rotated)
//   keys   [n_ctx, n_kv_heads * head_dim] f32  (the cache, new tokens included: the queries
//   values [n_ctx, n_kv_heads * head_dim] f32   sit at positions n_ctx - n_new ... n_ctx - 1)
//   out    [n_new, n_heads * head_dim] f32
// scale = head_dim^-0.5; softmax in f32 with the row maximum subtracted.
#pragma once

#include "tensor/tensor.h"

namespace fourbit {

struct AttentionShape {
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;
};

void attention_causal(const Tensor& q, const Tensor& keys, const Tensor& values,
                      const AttentionShape& shape, Tensor& out);

namespace cpu {
void attention_causal(const Tensor& q, const Tensor& keys, const Tensor& values,
                      const AttentionShape& shape, Tensor& out);
}

}  // namespace fourbit
