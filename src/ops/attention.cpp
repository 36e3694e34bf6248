#include "ops/attention.h"

#include "ops/device_dispatch.h"
#include "util/error.h"

namespace fourbit {

namespace {

// The pool's shape and the table's reach: every block id in range, enough blocks for n
// positions.
void check_pages(const KvPages& pages, int64_t kv_width, int64_t n_positions) {
    FOURBIT_ASSERT(pages.block_size > 0, "kv pages: block size {}", pages.block_size);
    FOURBIT_ASSERT(pages.keys.rank() == 2 && pages.keys.dim(1) == kv_width &&
                       pages.keys.dim(0) % pages.block_size == 0 &&
                       pages.values.shape() == pages.keys.shape(),
                   "kv pages: keys {} values {} for kv width {} and blocks of {}",
                   shape_text(pages.keys.shape()), shape_text(pages.values.shape()), kv_width,
                   pages.block_size);
    FOURBIT_ASSERT(pages.keys.dtype() == DType::f32 && pages.values.dtype() == DType::f32,
                   "kv pages: f32 only");
    const int64_t n_blocks = pages.keys.dim(0) / pages.block_size;
    const int64_t needed = (n_positions + pages.block_size - 1) / pages.block_size;
    FOURBIT_ASSERT(static_cast<int64_t>(pages.block_table.size()) >= needed,
                   "kv pages: {} positions need {} blocks, the table has {}", n_positions, needed,
                   pages.block_table.size());
    for (int64_t i = 0; i < needed; ++i) {
        FOURBIT_ASSERT(pages.block_table[i] >= 0 && pages.block_table[i] < n_blocks,
                       "kv pages: block {} of the table is {}, the pool has {}", i,
                       pages.block_table[i], n_blocks);
    }
}

}  // namespace

void kv_cache_write(const Tensor& keys, const Tensor& values, int64_t first_position,
                    const KvPages& pages) {
    FOURBIT_ASSERT(keys.rank() == 2 && values.shape() == keys.shape() &&
                       keys.dtype() == DType::f32 && values.dtype() == DType::f32,
                   "kv_cache_write: keys {} values {}", shape_text(keys.shape()),
                   shape_text(values.shape()));
    FOURBIT_ASSERT(first_position >= 0, "kv_cache_write: position {}", first_position);
    check_pages(pages, keys.dim(1), first_position + keys.dim(0));
    const Device device = op_device("kv_cache_write", {&keys, &values, &pages.keys, &pages.values});
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::kv_cache_write(keys, values, first_position, pages);
#else
        no_cuda_backend("kv_cache_write", device);
#endif
    }
    cpu::kv_cache_write(keys, values, first_position, pages);
}

void attention_paged(const Tensor& q, const KvPages& pages, int64_t n_ctx,
                     const AttentionShape& shape, Tensor& out) {
    const int64_t q_width = shape.n_heads * shape.head_dim;
    const int64_t kv_width = shape.n_kv_heads * shape.head_dim;
    FOURBIT_ASSERT(shape.n_heads % shape.n_kv_heads == 0, "attention: {} heads over {} kv heads",
                   shape.n_heads, shape.n_kv_heads);
    FOURBIT_ASSERT(q.rank() == 2 && q.dim(1) == q_width && out.shape() == q.shape(),
                   "attention: q {} out {}", shape_text(q.shape()), shape_text(out.shape()));
    FOURBIT_ASSERT(q.dtype() == DType::f32 && out.dtype() == DType::f32, "attention: f32 only");
    FOURBIT_ASSERT(n_ctx >= q.dim(0), "attention: {} queries but {} positions", q.dim(0), n_ctx);
    check_pages(pages, kv_width, n_ctx);
    const Device device = op_device("attention_paged", {&q, &pages.keys, &pages.values, &out});
    if (device.is_cuda()) {
        if (shape.head_dim > 128 || shape.n_heads / shape.n_kv_heads > 8) {
            fail("attention_paged on CUDA: head_dim {} with {} query heads per kv head (at most "
                 "128 and 8)",
                 shape.head_dim, shape.n_heads / shape.n_kv_heads);
        }
#ifdef FOURBIT_CUDA
        return cuda::attention_paged(q, pages, n_ctx, shape, out);
#else
        no_cuda_backend("attention_paged", device);
#endif
    }
    cpu::attention_paged(q, pages, n_ctx, shape, out);
}

}  // namespace fourbit
