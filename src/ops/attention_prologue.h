// attention_prologue: what MiniMax-M2 does between the q/k/v projections and attention, as one
// op so that CUDA runs it as one kernel per step instead of five:
//   q = rms_norm(q, q_norm); k = rms_norm(k, k_norm)   per_layer QK-norm (rms_norm.h)
//   rope_neox(q); rope_neox(k)                         partial NeoX RoPE at each token's position
//   kv_cache_write(k, v)                               into the pool through the tables
// q and k are updated in place. On CUDA the norm weights must share a dtype (f32 or bf16) and
// the result is bitwise that of the five ops.
#pragma once

#include "ops/attention.h"
#include "ops/rope.h"

namespace fourbit {

struct QkNorm {
    Tensor q_weight;  // [q_width] f32 or bf16
    Tensor k_weight;  // [kv_width]
    float eps = 1e-6f;
};

void attention_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                        const RopeShape& q_rope, const RopeShape& k_rope,
                        const PagedTokens& tokens, const KvLayer& pool);

// attention_prologue, then attention_paged of the normed, rotated q into `out`: the layer's
// attention as one op. On CUDA, for a decode step (tokens.one_token_per_sequence) over a bf16
// pool, one kernel does both: every attention CTA norms and rotates its own query heads (the
// norm's sums of squares over the whole row, bitwise as the prologue takes them), and the CTA
// whose split holds the token's position writes its kv head's key and value, which no other CTA
// of the step reads. The result is bitwise that of the two ops there. q and k are scratch
// afterwards: the fused kernel leaves them as they were, the two ops norm and rotate them.
void attention_with_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                             const RopeShape& q_rope, const RopeShape& k_rope,
                             const PagedTokens& tokens, const KvLayer& pool,
                             const AttentionShape& shape, Tensor& out);

namespace cuda {
// The widest rows the fused CUDA kernel holds in registers and shared memory (wider ones run as
// the five ops).
inline constexpr int64_t kPrologueMaxQWidth = 8192;
inline constexpr int64_t kPrologueMaxKvWidth = 2048;
void attention_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                        const RopeShape& q_rope, const RopeShape& k_rope,
                        const PagedTokens& tokens, const KvLayer& pool);
// Whether the decode attention kernel takes the prologue for this shape and pool (the
// one-token-per-sequence step, the prologue kernel's own limits and the attention's checks
// aside: the caller makes those).
bool folds_prologue(const RopeShape& q_rope, const KvLayer& pool, const AttentionShape& shape);
// The fused kernel (attention_with_prologue's CUDA path); the caller checked folds_prologue and
// the shapes.
void attention_with_prologue(const Tensor& q, const Tensor& k, const Tensor& v, const QkNorm& norm,
                             const RopeShape& q_rope, const PagedTokens& tokens,
                             const KvLayer& pool, const AttentionShape& shape, Tensor& out);
}

}  // namespace fourbit
