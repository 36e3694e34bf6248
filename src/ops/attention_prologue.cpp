#include "ops/attention_prologue.h"

#include "ops/device_dispatch.h"
#include "ops/rms_norm.h"
#include "util/error.h"

namespace fourbit {

namespace {

// Whether the CUDA prologue kernel takes these rows (else the five ops run).
bool prologue_kernel_takes(const Tensor& q, const Tensor& k, const QkNorm& norm,
                           const RopeShape& q_rope, const RopeShape& k_rope) {
    return norm.q_weight.dtype() == norm.k_weight.dtype() &&
           q_rope.rotary_dim <= cuda::kRopeCudaMaxRotaryDim &&
           q_rope.rotary_dim == k_rope.rotary_dim && q_rope.theta == k_rope.theta &&
           q_rope.head_dim == k_rope.head_dim && q.rank() == 2 && k.rank() == 2 &&
           q.dim(1) <= cuda::kPrologueMaxQWidth && k.dim(1) <= cuda::kPrologueMaxKvWidth;
}

// The checks the five ops would make (the pool's tables were checked before upload).
void check_prologue(const Tensor& q, const Tensor& k, const Tensor& v, const QkNorm& norm,
                    const RopeShape& q_rope, const RopeShape& k_rope, const PagedTokens& tokens,
                    const KvLayer& pool) {
    FOURBIT_ASSERT(q.rank() == 2 && k.rank() == 2 && v.shape() == k.shape() &&
                       q.dim(0) == k.dim(0) && q.dim(1) == q_rope.n_heads * q_rope.head_dim &&
                       k.dim(1) == k_rope.n_heads * k_rope.head_dim &&
                       q.dtype() == DType::f32 && k.dtype() == DType::f32 &&
                       v.dtype() == DType::f32,
                   "attention_prologue: q {} k {} v {}", shape_text(q.shape()),
                   shape_text(k.shape()), shape_text(v.shape()));
    FOURBIT_ASSERT(norm.q_weight.rank() == 1 && norm.q_weight.dim(0) == q.dim(1) &&
                       norm.k_weight.rank() == 1 && norm.k_weight.dim(0) == k.dim(1) &&
                       (norm.q_weight.dtype() == DType::f32 || norm.q_weight.dtype() == DType::bf16),
                   "attention_prologue: norms {} {}", shape_text(norm.q_weight.shape()),
                   shape_text(norm.k_weight.shape()));
    FOURBIT_ASSERT(tokens.positions.rank() == 1 && tokens.positions.dim(0) == q.dim(0) &&
                       pool.keys.rank() == 2 && pool.keys.dim(1) == k.dim(1) &&
                       (pool.keys.dtype() == DType::f32 || pool.keys.dtype() == DType::bf16) &&
                       pool.values.dtype() == pool.keys.dtype(),
                   "attention_prologue: positions {} pool {} of {}",
                   shape_text(tokens.positions.shape()), shape_text(pool.keys.shape()),
                   dtype_name(pool.keys.dtype()));
}

}  // namespace

void attention_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                        const RopeShape& q_rope, const RopeShape& k_rope, const PagedTokens& tokens,
                        const KvLayer& pool) {
    const Device device =
        op_device("attention_prologue",
                  {&q, &k, &v, &norm.q_weight, &norm.k_weight, &tokens.positions, &pool.keys});
    if (!device.is_cuda() || !prologue_kernel_takes(q, k, norm, q_rope, k_rope)) {
        rms_norm(q, norm.q_weight, norm.eps, q);
        rms_norm(k, norm.k_weight, norm.eps, k);
        rope_neox(q, tokens.positions, q_rope);
        rope_neox(k, tokens.positions, k_rope);
        kv_cache_write(k, v, tokens, pool);
        return;
    }
    check_prologue(q, k, v, norm, q_rope, k_rope, tokens, pool);
#ifdef FOURBIT_CUDA
    cuda::attention_prologue(q, k, v, norm, q_rope, k_rope, tokens, pool);
#else
    no_cuda_backend("attention_prologue", device);
#endif
}

void attention_with_prologue(Tensor& q, Tensor& k, const Tensor& v, const QkNorm& norm,
                             const RopeShape& q_rope, const RopeShape& k_rope,
                             const PagedTokens& tokens, const KvLayer& pool,
                             const AttentionShape& shape, Tensor& out) {
#ifdef FOURBIT_CUDA
    const Device device = op_device(
        "attention_with_prologue",
        {&q, &k, &v, &norm.q_weight, &norm.k_weight, &tokens.positions, &pool.keys, &out});
    if (device.is_cuda() && tokens.one_token_per_sequence &&
        prologue_kernel_takes(q, k, norm, q_rope, k_rope) &&
        cuda::folds_prologue(q_rope, pool, shape)) {
        check_prologue(q, k, v, norm, q_rope, k_rope, tokens, pool);
        check_attention_paged(q, tokens, pool, shape, out);
        cuda::attention_with_prologue(q, k, v, norm, q_rope, tokens, pool, shape, out);
        return;
    }
#endif
    attention_prologue(q, k, v, norm, q_rope, k_rope, tokens, pool);
    attention_paged(q, tokens, pool, shape, out);
}

}  // namespace fourbit
