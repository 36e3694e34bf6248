#include "ops/attention.h"

#include <algorithm>

#include "ops/device_dispatch.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {

namespace {

void check_pool(const KvLayer& pool, int64_t kv_width) {
    FOURBIT_ASSERT(pool.block_size > 0, "kv pool: block size {}", pool.block_size);
    FOURBIT_ASSERT(pool.keys.rank() == 2 && pool.keys.dim(1) == kv_width &&
                       pool.keys.dim(0) % pool.block_size == 0 &&
                       pool.values.shape() == pool.keys.shape(),
                   "kv pool: keys {} values {} for kv width {} and blocks of {}",
                   shape_text(pool.keys.shape()), shape_text(pool.values.shape()), kv_width,
                   pool.block_size);
    FOURBIT_ASSERT((pool.keys.dtype() == DType::f32 || pool.keys.dtype() == DType::bf16) &&
                       pool.values.dtype() == pool.keys.dtype(),
                   "kv pool: keys {} and values {} (f32 or bf16, both the same)",
                   dtype_name(pool.keys.dtype()), dtype_name(pool.values.dtype()));
}

void check_token_shapes(const PagedTokens& tokens, int64_t n_tokens) {
    FOURBIT_ASSERT(tokens.positions.rank() == 1 && tokens.positions.dim(0) == n_tokens &&
                       tokens.table_offsets.rank() == 1 && tokens.table_offsets.dim(0) == n_tokens &&
                       tokens.block_tables.rank() == 1,
                   "paged tokens: positions {} offsets {} tables {} for {} tokens",
                   shape_text(tokens.positions.shape()), shape_text(tokens.table_offsets.shape()),
                   shape_text(tokens.block_tables.shape()), n_tokens);
    FOURBIT_ASSERT(tokens.positions.dtype() == DType::i32 &&
                       tokens.table_offsets.dtype() == DType::i32 &&
                       tokens.block_tables.dtype() == DType::i32,
                   "paged tokens: i32 tables");
}

// The device of an op over the pool; host tables are checked here, device ones were checked
// before they were uploaded.
Device paged_device(const char* op, const PagedTokens& tokens, const KvLayer& pool,
                    const Tensor& a, const Tensor& b) {
    const Device device = op_device(op, {&a, &b, &tokens.positions, &tokens.table_offsets,
                                         &tokens.block_tables, &pool.keys, &pool.values});
    if (device.is_host()) {
        check_paged_tokens(tokens, pool.keys.dim(0) / pool.block_size, pool.block_size);
    }
    return device;
}

}  // namespace

void check_paged_tokens(const PagedTokens& tokens, int64_t n_blocks, int64_t block_size) {
    FOURBIT_ASSERT(tokens.positions.device().is_host(), "check_paged_tokens: host tables only");
    const int64_t n_tokens = tokens.positions.dim(0), n_entries = tokens.block_tables.dim(0);
    const int32_t* positions = tokens.positions.data<int32_t>();
    const int32_t* offsets = tokens.table_offsets.data<int32_t>();
    const int32_t* tables = tokens.block_tables.data<int32_t>();
    for (int64_t t = 0; t < n_tokens; ++t) {
        FOURBIT_ASSERT(positions[t] >= 0 && positions[t] < tokens.max_context,
                       "paged tokens: token {} at position {} (max context {})", t, positions[t],
                       tokens.max_context);
        const int64_t needed = positions[t] / block_size + 1;
        FOURBIT_ASSERT(offsets[t] >= 0 && offsets[t] + needed <= n_entries,
                       "paged tokens: token {} at position {} needs {} blocks, its table has {}",
                       t, positions[t], needed, std::max<int64_t>(n_entries - offsets[t], 0));
        for (int64_t i = 0; i < needed; ++i) {
            const int32_t block = tables[offsets[t] + i];
            FOURBIT_ASSERT(block >= 0 && block < n_blocks,
                           "paged tokens: block {} of token {}'s table is {}, the pool has {}", i,
                           t, block, n_blocks);
        }
    }
}

PagedTokens paged_tokens(std::span<const PagedSequence> sequences) {
    int64_t n_tokens = 0, n_entries = 0;
    for (const PagedSequence& s : sequences) {
        n_tokens += s.n_new;
        n_entries += static_cast<int64_t>(s.block_table.size());
    }
    PagedTokens tokens;
    tokens.one_token_per_sequence =
        std::ranges::all_of(sequences, [](const PagedSequence& s) { return s.n_new <= 1; });
    tokens.positions = Tensor::zeros(DType::i32, {n_tokens});
    tokens.table_offsets = Tensor::zeros(DType::i32, {n_tokens});
    tokens.block_tables = Tensor::zeros(DType::i32, {n_entries});
    int64_t t = 0, offset = 0;
    for (const PagedSequence& s : sequences) {
        std::copy(s.block_table.begin(), s.block_table.end(),
                  tokens.block_tables.data<int32_t>() + offset);
        for (int64_t i = 0; i < s.n_new; ++i, ++t) {
            tokens.positions.data<int32_t>()[t] = static_cast<int32_t>(s.first_position + i);
            tokens.table_offsets.data<int32_t>()[t] = static_cast<int32_t>(offset);
        }
        offset += static_cast<int64_t>(s.block_table.size());
        tokens.max_context = std::max(tokens.max_context, s.first_position + s.n_new);
    }
    return tokens;
}

PagedTokens paged_tokens_to(const PagedTokens& tokens, Device device) {
    return {tokens.positions.to(device), tokens.table_offsets.to(device),
            tokens.block_tables.to(device), tokens.max_context, tokens.one_token_per_sequence};
}

void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool) {
    FOURBIT_ASSERT(keys.rank() == 2 && values.shape() == keys.shape() &&
                       keys.dtype() == DType::f32 && values.dtype() == DType::f32,
                   "kv_cache_write: keys {} values {}", shape_text(keys.shape()),
                   shape_text(values.shape()));
    check_pool(pool, keys.dim(1));
    check_token_shapes(tokens, keys.dim(0));
    const Device device = paged_device("kv_cache_write", tokens, pool, keys, values);
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::kv_cache_write(keys, values, tokens, pool);
#else
        no_cuda_backend("kv_cache_write", device);
#endif
    }
    cpu::kv_cache_write(keys, values, tokens, pool);
}

Device check_attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                             const AttentionShape& shape, const Tensor& out) {
    const int64_t q_width = shape.n_heads * shape.head_dim;
    const int64_t kv_width = shape.n_kv_heads * shape.head_dim;
    FOURBIT_ASSERT(shape.n_heads % shape.n_kv_heads == 0, "attention: {} heads over {} kv heads",
                   shape.n_heads, shape.n_kv_heads);
    FOURBIT_ASSERT(q.rank() == 2 && q.dim(1) == q_width && out.shape() == q.shape(),
                   "attention: q {} out {}", shape_text(q.shape()), shape_text(out.shape()));
    FOURBIT_ASSERT(
        q.dtype() == DType::f32 && (out.dtype() == DType::f32 || out.dtype() == DType::bf16),
        "attention: q {} out {} (f32 q; f32 or bf16 out)", dtype_name(q.dtype()),
        dtype_name(out.dtype()));
    check_pool(pool, kv_width);
    check_token_shapes(tokens, q.dim(0));
    const Device device = paged_device("attention_paged", tokens, pool, q, out);
    if (device.is_cuda() && (shape.head_dim > 128 || shape.n_heads / shape.n_kv_heads > 8)) {
        fail(
            "attention_paged on CUDA: head_dim {} with {} query heads per kv head (at most 128 "
            "and 8)",
            shape.head_dim, shape.n_heads / shape.n_kv_heads);
    }
    return device;
}

void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out) {
    const Device device = check_attention_paged(q, tokens, pool, shape, out);
    if (device.is_cuda()) {
#ifdef FOURBIT_CUDA
        return cuda::attention_paged(q, tokens, pool, shape, out);
#else
        no_cuda_backend("attention_paged", device);
#endif
    }
    if (out.dtype() == DType::f32) return cpu::attention_paged(q, tokens, pool, shape, out);
    Tensor wide = Tensor::zeros(DType::f32, out.shape());
    cpu::attention_paged(q, tokens, pool, shape, wide);
    for (int64_t i = 0; i < out.numel(); ++i)
        out.data<uint16_t>()[i] = f32_to_bf16(wide.data<float>()[i]);
}

}  // namespace fourbit
