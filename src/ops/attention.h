// Attention over a paged KV cache, for a whole batch of sequences in one call. A layer's keys
// and values for every sequence live in one pool of fixed-size blocks; a sequence's block table
// says which block holds which positions: position p is row
// table[p / block_size] * block_size + p % block_size of the pool.
//
// A batch's new tokens are rows of q (and of the new keys and values), sequence after sequence.
// PagedTokens says, per token, its position and where its sequence's table starts in the
// concatenated tables: tensors on the pool's device, so that a device step uploads them once
// and no op needs the host.
//
// The pool holds f32 or bf16 keys and values (KvLayer::keys' dtype, the same for values): a
// bf16 pool takes half the memory and rounds each stored element to nearest even; everything
// after the store is f32 arithmetic on the stored values, on every device.
//
// kv_cache_write: stores every token's key and value at its position.
//   keys, values [T, n_kv_heads * head_dim] f32 (keys already normed and rotated)
//
// attention_paged: softmax attention of each token over its sequence's positions 0 .. its own
// (causal), grouped-query (query head h reads kv head h / (n_heads / n_kv_heads)); a token's
// keys and values, and those of the tokens before it in the batch, must already be written.
//   q    [T, n_heads * head_dim] f32 (already normed and rotated)
//   out  [T, n_heads * head_dim] f32, or bf16 (rounded to nearest even: the input of an NVFP4
//        o_proj, ops/linear.h's linear_activation_dtype)
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

// One layer of the pool.
struct KvLayer {
    Tensor keys;    // [n_blocks * block_size, n_kv_heads * head_dim] f32 or bf16
    Tensor values;  // the same shape and dtype
    int64_t block_size = 0;
};

struct PagedTokens {
    Tensor positions;      // [T] i32: each token's position in its sequence
    Tensor table_offsets;  // [T] i32: where its sequence's table starts in `block_tables`
    Tensor block_tables;   // [n] i32: every sequence's table, one after another
    // Host knowledge the launch may size its work by: at least every position + 1.
    int64_t max_context = 0;
    // Host knowledge: each token is its sequence's only new one (a decode step), so no token
    // attends to another's new key (attention_with_prologue folds the cache write in then).
    bool one_token_per_sequence = false;
};

// The host-side check of a batch's tables (host tensors): every token's table reaches its
// position and names blocks inside a pool of `n_blocks`. The host ops run it themselves; a
// device step runs it before uploading the tables, since kernels cannot report a bad index.
void check_paged_tokens(const PagedTokens& tokens, int64_t n_blocks, int64_t block_size);

// One sequence's new tokens as the host knows them: positions first_position ...
// first_position + n_new - 1 through `block_table`.
struct PagedSequence {
    std::span<const int32_t> block_table;
    int64_t first_position = 0;
    int64_t n_new = 0;
};
// The batch's PagedTokens in host memory, tokens in the order of `sequences`.
PagedTokens paged_tokens(std::span<const PagedSequence> sequences);
// The same tables on `device`.
PagedTokens paged_tokens_to(const PagedTokens& tokens, Device device);

void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool);
// attention_paged's checks of its arguments (a named error); the device they are on.
Device check_attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                             const AttentionShape& shape, const Tensor& out);
void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out);

namespace cpu {
void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool);
void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out);
}  // namespace cpu
// On CUDA: head_dim <= 128 and at most 8 query heads per kv head.
namespace cuda {
void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool);
void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out);
}  // namespace cuda

}  // namespace fourbit
