// Attention over a paged KV cache. A layer's keys and values for every sequence live in one pool
// of fixed-size blocks; a sequence's block table says which block holds which positions:
// position p is row block_table[p / block_size] * block_size + p % block_size of the pool.
//
// kv_cache_write: stores one sequence's new keys and values at positions
//   [first_position, first_position + n) of its pages.
//   keys, values [n, n_kv_heads * head_dim] f32 (keys already normed and rotated)
//
// attention_paged: softmax attention of one sequence's new queries over its pages, causal,
// grouped-query (query head h reads kv head h / (n_heads / n_kv_heads)).
//   q    [n_new, n_heads * head_dim] f32 (already normed and rotated); the queries sit at
//        positions n_ctx - n_new ... n_ctx - 1, whose keys and values are already written
//   out  [n_new, n_heads * head_dim] f32
// scale = head_dim^-0.5; softmax in f32 with the row maximum subtracted.
#pragma once

#include <cstdint>
#include <span>

#include "tensor/tensor.h"

namespace fourbit {

struct AttentionShape {
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;
};

// One sequence's view of one layer of the pool.
struct KvPages {
    Tensor keys;    // [n_blocks * block_size, n_kv_heads * head_dim] f32: the whole pool
    Tensor values;  // the same shape
    int64_t block_size = 0;
    std::span<const int32_t> block_table;  // block i holds positions [i, i + 1) * block_size
};

void kv_cache_write(const Tensor& keys, const Tensor& values, int64_t first_position,
                    const KvPages& pages);
void attention_paged(const Tensor& q, const KvPages& pages, int64_t n_ctx,
                     const AttentionShape& shape, Tensor& out);

namespace cpu {
void kv_cache_write(const Tensor& keys, const Tensor& values, int64_t first_position,
                    const KvPages& pages);
void attention_paged(const Tensor& q, const KvPages& pages, int64_t n_ctx,
                     const AttentionShape& shape, Tensor& out);
}  // namespace cpu
// On CUDA (pool, q and out on the device; the block table stays a host span, copied per call):
// head_dim <= 128 and at most 8 query heads per kv head.
namespace cuda {
void kv_cache_write(const Tensor& keys, const Tensor& values, int64_t first_position,
                    const KvPages& pages);
void attention_paged(const Tensor& q, const KvPages& pages, int64_t n_ctx,
                     const AttentionShape& shape, Tensor& out);
}  // namespace cuda

}  // namespace fourbit
