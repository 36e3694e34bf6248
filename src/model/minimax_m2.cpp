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

// The rows of logits a sequence asks for.
int64_t logit_rows(const SequenceInput& sequence) {
    switch (sequence.logits) {
        case LogitRows::none: return 0;
        case LogitRows::last: return 1;
        case LogitRows::all: return static_cast<int64_t>(sequence.token_ids.size());
    }
    return 0;
}

// Everything a step needs to know about its batch besides the weights and the pool, made and
// checked on the host, then placed on the model's device in one copy: the token ids, the paged
// attention's tables, and which rows of the residual stream get logits.
struct StepIndices {
    Tensor ids;          // [T] i32
    PagedTokens paged;   // positions, table offsets, tables
    Tensor logit_rows;   // [R] i32: rows of the residual stream, in batch order
};

StepIndices step_indices(std::span<const SequenceInput> batch, const MiniMaxM2Config& c,
                         const KvPool& pool) {
    int64_t n_tokens = 0, n_entries = 0, n_rows = 0;
    for (const SequenceInput& sequence : batch) {
        FOURBIT_ASSERT(!sequence.token_ids.empty(), "a sequence with no new tokens in a batch");
        n_tokens += static_cast<int64_t>(sequence.token_ids.size());
        n_entries += static_cast<int64_t>(sequence.block_table.size());
        n_rows += logit_rows(sequence);
    }
    FOURBIT_ASSERT(n_tokens > 0, "forward of an empty batch");
    // One buffer: ids, positions, table offsets, tables, logit rows.
    Tensor packed = Tensor::zeros(DType::i32, {3 * n_tokens + n_entries + n_rows});
    auto part = [&](int64_t& at, int64_t count) {
        Tensor view = packed.rows(at, count);
        at += count;
        return view;
    };
    int64_t at = 0;
    StepIndices host;
    host.ids = part(at, n_tokens);
    host.paged.positions = part(at, n_tokens);
    host.paged.table_offsets = part(at, n_tokens);
    host.paged.block_tables = part(at, n_entries);
    host.logit_rows = part(at, n_rows);
    int64_t t = 0, offset = 0, r = 0;
    for (const SequenceInput& sequence : batch) {
        const int64_t n = static_cast<int64_t>(sequence.token_ids.size());
        std::copy(sequence.block_table.begin(), sequence.block_table.end(),
                  host.paged.block_tables.data<int32_t>() + offset);
        const int64_t wanted = logit_rows(sequence);
        for (int64_t i = 0; i < n; ++i, ++t) {
            const int32_t id = sequence.token_ids[i];
            if (id < 0 || id >= c.vocab_size) {
                fail("token id {} is outside the vocabulary [0, {})", id, c.vocab_size);
            }
            host.ids.data<int32_t>()[t] = id;
            host.paged.positions.data<int32_t>()[t] = static_cast<int32_t>(sequence.n_cached + i);
            host.paged.table_offsets.data<int32_t>()[t] = static_cast<int32_t>(offset);
            if (i >= n - wanted) host.logit_rows.data<int32_t>()[r++] = static_cast<int32_t>(t);
        }
        offset += static_cast<int64_t>(sequence.block_table.size());
        host.paged.max_context = std::max(host.paged.max_context, sequence.n_cached + n);
    }
    check_paged_tokens(host.paged, pool.num_blocks(), pool.block_size());
    const Device device = pool.device();
    if (device.is_host()) return host;
    const Tensor placed = packed.to(device);
    at = 0;
    auto placed_part = [&](int64_t count) {
        Tensor view = placed.rows(at, count);
        at += count;
        return view;
    };
    StepIndices on_device;
    on_device.ids = placed_part(n_tokens);
    on_device.paged.positions = placed_part(n_tokens);
    on_device.paged.table_offsets = placed_part(n_tokens);
    on_device.paged.block_tables = placed_part(n_entries);
    on_device.logit_rows = placed_part(n_rows);
    on_device.paged.max_context = host.paged.max_context;
    return on_device;
}

}  // namespace

Tensor MiniMaxM2::forward(std::span<const SequenceInput> batch, const KvPool& pool,
                          ForwardObserver* observer) const {
    const MiniMaxM2Config& c = weights_.config;
    const float eps = static_cast<float>(c.rms_norm_eps);
    const Device device = weights_.device();
    if (pool.device() != device) {
        fail("forward: the KV pool is on {}, the model on {}", device_text(pool.device()),
             device_text(device));
    }
    FOURBIT_ASSERT(observer == nullptr || device.is_host(),
                   "forward: an observer reads activations on the host only");

    // Flatten the batch: every projection sees all T tokens at once; attention finds each
    // token's sequence through the paged tables. Positions continue each sequence's cache.
    const StepIndices step = step_indices(batch, c, pool);
    const int64_t T = step.ids.dim(0);
    auto f32 = [&](int64_t rows, int64_t cols) {
        return Tensor::zeros(DType::f32, {rows, cols}, device);
    };

    const AttentionShape attention_shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim};
    const RopeShape q_rope{c.num_attention_heads, c.head_dim, c.rotary_dim, c.rope_theta};
    const RopeShape k_rope{c.num_key_value_heads, c.head_dim, c.rotary_dim, c.rope_theta};

    Tensor x = f32(T, c.hidden_size);  // [T, H] the residual stream
    embedding(step.ids, weights_.embed_tokens, x);
    Tensor h = f32(T, c.hidden_size);  // [T, H] normed input of each block
    Tensor q = f32(T, c.q_width()), k = f32(T, c.kv_width()), v = f32(T, c.kv_width());
    Tensor attended = f32(T, c.q_width());  // [T, Q]
    Tensor block_out = f32(T, c.hidden_size);
    Tensor router_logits = f32(T, c.num_local_experts);  // [T, E]
    Tensor expert_ids = Tensor::zeros(DType::i32, {T, c.num_experts_per_tok}, device);
    Tensor expert_weights = f32(T, c.num_experts_per_tok);

    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& layer = weights_.layers[l];
        const KvLayer kv = pool.layer(l);

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
        rope_neox(q, step.paged.positions, q_rope);
        rope_neox(k, step.paged.positions, k_rope);
        // Every token's keys and values are written before any attention reads (see the
        // header's NOTE).
        kv_cache_write(k, v, step.paged, kv);
        attention_paged(q, step.paged, kv, attention_shape, attended);
        if (observer) observer->attention_output(l, attended);
        linear(attended, layer.o, block_out);  // [T, H]
        add(x, block_out);

        // MoE: the router selects by sigmoid + bias but weighs by the sigmoid alone.
        rms_norm(x, layer.post_attention_norm, eps, h);
        linear(h, layer.router, router_logits);  // [T, E], f32 whatever the weight's dtype
        moe_route(router_logits, layer.routing_bias, c.num_experts_per_tok, expert_ids,
                  expert_weights);
        if (observer) observer->moe_input(l, h, expert_ids);
        // The experts as this device holds them: the checkpoint's list on the host, grouped
        // once at load on a CUDA device.
        if (device.is_host()) {
            moe_experts(h, expert_ids, expert_weights, layer.experts, block_out);
        } else {
            moe_experts(h, expert_ids, expert_weights, layer.grouped_experts, block_out);
        }
        add(x, block_out);
    }

    // Only the rows whose logits are wanted go through the final norm and the head (a gather
    // of rows, which is what the embedding op is).
    const int64_t n_rows = step.logit_rows.dim(0);
    if (n_rows == 0) return Tensor::zeros(DType::f32, {0, c.vocab_size});
    Tensor final_rows = f32(n_rows, c.hidden_size);
    embedding(step.logit_rows, x, final_rows);
    rms_norm(final_rows, weights_.final_norm, eps, final_rows);
    Tensor logits = f32(n_rows, c.vocab_size);  // [rows, V]
    linear(final_rows, weights_.lm_head, logits);
    return device.is_host() ? logits : logits.to(Device::host());
}

}  // namespace fourbit
