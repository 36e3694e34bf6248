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

namespace cuda {
// The widest rows the fused CUDA kernel holds in registers and shared memory (wider ones run as
// the five ops).
inline constexpr int64_t kPrologueMaxQWidth = 8192;
inline constexpr int64_t kPrologueMaxKvWidth = 2048;
void attention_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                        const RopeShape& q_rope, const RopeShape& k_rope,
                        const PagedTokens& tokens, const KvLayer& pool);
}

}  // namespace fourbit
