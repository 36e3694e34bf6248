// The MiniMax-M2 forward pass (minimax_m2.md §2), written once; every operation is an op by
// name. All activations are f32 and every product accumulates in f32: this CPU path is the
// reference other devices are tested against. Shapes: T = new tokens in the batch, H = hidden,
// Q = n_heads * head_dim, KV = n_kv_heads * head_dim, E = experts, V = vocabulary.
#include "model/minimax_m2.h"

#include <algorithm>

#include "ops/add.h"
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/moe.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "util/error.h"

namespace fourbit {

namespace {

Tensor f32(int64_t rows, int64_t cols) { return Tensor::zeros(DType::f32, {rows, cols}); }

}  // namespace

Tensor MiniMaxM2::forward(std::span<const SequenceInput> batch, const KvPool& pool,
                          ForwardObserver* observer) const {
    const MiniMaxM2Config& c = weights_.config;
    const float eps = static_cast<float>(c.rms_norm_eps);

    // Flatten the batch: every projection sees all T tokens at once; only the KV cache and
    // attention are per sequence. Positions continue each sequence's cache.
    std::vector<int32_t> ids, positions;
    std::vector<int64_t> first_row;
    for (const SequenceInput& sequence : batch) {
        FOURBIT_ASSERT(!sequence.token_ids.empty(), "a sequence with no new tokens in a batch");
        first_row.push_back(static_cast<int64_t>(ids.size()));
        for (size_t i = 0; i < sequence.token_ids.size(); ++i) {
            int32_t id = sequence.token_ids[i];
            if (id < 0 || id >= c.vocab_size) {
                fail("token id {} is outside the vocabulary [0, {})", id, c.vocab_size);
            }
            ids.push_back(id);
            positions.push_back(static_cast<int32_t>(sequence.n_cached + i));
        }
    }
    const int64_t T = static_cast<int64_t>(ids.size());
    FOURBIT_ASSERT(T > 0, "forward of an empty batch");

    const AttentionShape attention_shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim};
    const RopeShape q_rope{c.num_attention_heads, c.head_dim, c.rotary_dim, c.rope_theta};
    const RopeShape k_rope{c.num_key_value_heads, c.head_dim, c.rotary_dim, c.rope_theta};

    Tensor x = f32(T, c.hidden_size);  // [T, H] the residual stream
    embedding(ids, weights_.embed_tokens, x);
    Tensor h = f32(T, c.hidden_size);  // [T, H] normed input of each block
    Tensor q = f32(T, c.q_width()), k = f32(T, c.kv_width()), v = f32(T, c.kv_width());
    Tensor attended = f32(T, c.q_width());  // [T, Q]
    Tensor block_out = f32(T, c.hidden_size);
    Tensor router_logits = f32(T, c.num_local_experts);  // [T, E]
    Tensor expert_ids = Tensor::zeros(DType::i32, {T, c.num_experts_per_tok});
    Tensor expert_weights = f32(T, c.num_experts_per_tok);

    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& layer = weights_.layers[l];

        // Attention.
        rms_norm(x, layer.input_norm, eps, h);
        if (observer) observer->attention_input(l, h);
        linear(h, layer.q, q);  // [T, Q]
        linear(h, layer.k, k);  // [T, KV]
        linear(h, layer.v, v);  // [T, KV]
        // QK-norm is "per_layer": one RMS over the token's whole q (all heads), and one over
        // its whole k, not per head; and it comes before RoPE.
        rms_norm(q, layer.q_norm, eps, q);
        rms_norm(k, layer.k_norm, eps, k);
        // Partial RoPE: only the first rotary_dim of each head's head_dim dimensions rotate.
        rope_neox(q, positions, q_rope);
        rope_neox(k, positions, k_rope);
        // Every sequence writes its keys and values before any reads (see the header's NOTE).
        for (size_t s = 0; s < batch.size(); ++s) {
            const int64_t n = static_cast<int64_t>(batch[s].token_ids.size());
            kv_cache_write(k.rows(first_row[s], n), v.rows(first_row[s], n), batch[s].n_cached,
                           pool.pages(l, batch[s].block_table));
        }
        for (size_t s = 0; s < batch.size(); ++s) {
            const int64_t n = static_cast<int64_t>(batch[s].token_ids.size());
            Tensor out = attended.rows(first_row[s], n);
            attention_paged(q.rows(first_row[s], n), pool.pages(l, batch[s].block_table),
                            batch[s].n_cached + n, attention_shape, out);
        }
        if (observer) observer->attention_output(l, attended);
        linear(attended, layer.o, block_out);  // [T, H]
        add(x, block_out);

        // MoE: the router selects by sigmoid + bias but weighs by the sigmoid alone.
        rms_norm(x, layer.post_attention_norm, eps, h);
        linear(h, layer.router, router_logits);  // [T, E], f32 whatever the weight's dtype
        moe_route(router_logits, layer.routing_bias, c.num_experts_per_tok, expert_ids,
                  expert_weights);
        if (observer) observer->moe_input(l, h, expert_ids);
        moe_experts(h, expert_ids, expert_weights, layer.experts, block_out);
        add(x, block_out);
    }

    // Only the rows whose logits are wanted go through the final norm and the head.
    auto rows_wanted = [](const SequenceInput& sequence) -> int64_t {
        switch (sequence.logits) {
            case LogitRows::none: return 0;
            case LogitRows::last: return 1;
            case LogitRows::all: return static_cast<int64_t>(sequence.token_ids.size());
        }
        return 0;
    };
    int64_t n_rows = 0;
    for (const SequenceInput& sequence : batch) n_rows += rows_wanted(sequence);
    if (n_rows == 0) return f32(0, c.vocab_size);
    Tensor final_rows = f32(n_rows, c.hidden_size);
    int64_t row = 0;
    for (size_t s = 0; s < batch.size(); ++s) {
        const int64_t n = static_cast<int64_t>(batch[s].token_ids.size());
        const int64_t count = rows_wanted(batch[s]);
        if (count == 0) continue;
        Tensor source = x.rows(first_row[s] + n - count, count);
        std::copy_n(source.data<float>(), source.numel(),
                    final_rows.data<float>() + row * c.hidden_size);
        row += count;
    }
    rms_norm(final_rows, weights_.final_norm, eps, final_rows);
    Tensor logits = f32(n_rows, c.vocab_size);  // [rows, V]
    linear(final_rows, weights_.lm_head, logits);
    return logits;
}

}  // namespace fourbit
