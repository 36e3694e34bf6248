// The MiniMax-M2 forward pass (minimax_m2.md §2), written once; every operation is an op by
// name. All activations are f32 and every product accumulates in f32: this CPU path is the
// reference other devices are tested against. Shapes: T = new tokens in the batch, H = hidden,
// Q = n_heads * head_dim, KV = n_kv_heads * head_dim, E = experts, V = vocabulary.
#include "model/minimax_m2.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <mutex>

#include "model/op_profile.h"
#include "ops/add.h"
#include "ops/attention.h"
#include "ops/attention_prologue.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/moe.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/step_graph.h"
#include "ops/top_k.h"
#include "util/error.h"

namespace fourbit {

// Everything a step needs to know about its batch besides the weights and the pool, made and
// checked on the host: the token ids, the paged attention's tables, and which rows of the
// residual stream get logits. One i32 buffer, laid out so that a decode-shaped step (T tokens,
// R rows) keeps every part at the same offset whatever its tables' length: a graph recorded
// for it reads each part where it was.
struct StepIndices {
    Tensor packed;       // [ids T][positions T][table offsets T][logit rows R][tables N]
    Tensor ids;          // [T] i32
    PagedTokens paged;   // positions, table offsets, tables
    Tensor logit_rows;   // [R] i32: rows of the residual stream, in batch order
};

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

// Views of the parts of `packed` (host or device).
StepIndices step_views(const Tensor& packed, int64_t n_tokens, int64_t n_rows, int64_t max_context,
                       bool one_token_per_sequence) {
    StepIndices views;
    views.packed = packed;
    views.ids = packed.rows(0, n_tokens);
    views.paged.positions = packed.rows(n_tokens, n_tokens);
    views.paged.table_offsets = packed.rows(2 * n_tokens, n_tokens);
    views.logit_rows = packed.rows(3 * n_tokens, n_rows);
    views.paged.block_tables = packed.rows(3 * n_tokens + n_rows, packed.dim(0) - 3 * n_tokens - n_rows);
    views.paged.max_context = max_context;
    views.paged.one_token_per_sequence = one_token_per_sequence;
    return views;
}

StepIndices host_step_indices(std::span<const SequenceInput> batch, const MiniMaxM2Config& c) {
    int64_t n_tokens = 0, n_entries = 0, n_rows = 0;
    for (const SequenceInput& sequence : batch) {
        FOURBIT_ASSERT(!sequence.token_ids.empty(), "a sequence with no new tokens in a batch");
        n_tokens += static_cast<int64_t>(sequence.token_ids.size());
        n_entries += static_cast<int64_t>(sequence.block_table.size());
        n_rows += logit_rows(sequence);
    }
    FOURBIT_ASSERT(n_tokens > 0, "forward of an empty batch");
    StepIndices host = step_views(Tensor::zeros(DType::i32, {3 * n_tokens + n_rows + n_entries}),
                                  n_tokens, n_rows, 0, n_tokens == std::ssize(batch));
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
    return host;
}

// Steps of at most this many tokens are recorded as CUDA graphs (decode, speculative
// verification, small chunks); their dense linears all take the f32-x GEMV (ops/linear_cuda.cu),
// longer steps are dominated by their kernels' own time.
constexpr int64_t kGraphMaxTokens = 64;

// The dtype in which a layer's q, k and v projections read their input best: bf16 where all
// three do (ops/linear.h, linear_activation_dtype), else f32.
DType attention_input_dtype(const LayerWeights& layer) {
    if (layer.qkv.defined()) return linear_activation_dtype(layer.qkv.weight);
    for (const LinearWeight* w : {&layer.q, &layer.k, &layer.v}) {
        if (linear_activation_dtype(*w) != DType::bf16) return DType::f32;
    }
    return DType::bf16;
}

}  // namespace

struct MiniMaxM2::DeviceState {
    std::mutex mutex;  // one device step at a time: they share the buffers
    StepBuffers buffers;
    StepGraphs graphs;
};

MiniMaxM2::MiniMaxM2(ModelWeights weights)
    : weights_(std::move(weights)), device_state_(std::make_shared<DeviceState>()) {}

template <typename Finish>
auto MiniMaxM2::forward_step(std::span<const SequenceInput> batch, const KvPool& pool,
                             ForwardObserver* observer, Finish finish) const {
    const MiniMaxM2Config& c = weights_.config;
    const Device device = weights_.device();
    if (pool.device() != device) {
        fail("forward: the KV pool is on {}, the model on {}", device_text(pool.device()),
             device_text(device));
    }
    FOURBIT_ASSERT(observer == nullptr || device.is_host(),
                   "forward: an observer reads activations on the host only");
    // Flatten the batch: every projection sees all T tokens at once; attention finds each
    // token's sequence through the paged tables. Positions continue each sequence's cache.
    const StepIndices host = host_step_indices(batch, c);
    const int64_t T = host.ids.dim(0), R = host.logit_rows.dim(0);
    if (device.is_host()) {
        StepActivations a = device_state_->buffers.activations(c, device, T, R);
        run_step(host, pool, a, observer);
        return finish(R == 0 ? Tensor::zeros(DType::f32, {0, c.vocab_size}) : a.logits);
    }

    // The host ops check the tables themselves; kernels cannot report a bad block id, so the
    // device's are checked before they go up.
    check_paged_tokens(host.paged, pool.num_blocks(), pool.block_size());
    std::lock_guard lock(device_state_->mutex);
    StepBuffers& buffers = device_state_->buffers;
    StepActivations a = buffers.activations(c, device, T, R);
    Tensor placed = buffers.indices(device, host.packed.dim(0));
    placed.copy_from(host.packed);
    // Profiling waits after every op, which a recorded graph cannot.
    const bool graphed = T <= kGraphMaxTokens && !OpProfile::global().enabled();
    // A recorded step's launches are sized by its context: round it up to a power of two, so
    // that a decode reuses its graph for many steps (the kernels read each token's own
    // position; a bound above it only adds empty work). The same whether or not graphs are
    // on, so that both launch the very same kernels.
    const int64_t context =
        T <= kGraphMaxTokens ? std::max<int64_t>(64, static_cast<int64_t>(std::bit_ceil(
                                            static_cast<uint64_t>(host.paged.max_context))))
                : host.paged.max_context;
    const bool single = host.paged.one_token_per_sequence;
    const StepIndices step = step_views(placed, T, R, context, single);
    if (graphed) {
        const std::string key = fmt::format("{} {} {} {} pool {} buffers {}", T, R, context, single,
                                            pool.id(), buffers.generation());
        device_state_->graphs.run(device, key, [&] { run_step(step, pool, a, nullptr); });
    } else {
        run_step(step, pool, a, nullptr);
    }
    // Still under the lock: the next step may overwrite a.logits.
    return finish(R == 0 ? Tensor::zeros(DType::f32, {0, c.vocab_size}, device) : a.logits);
}

Tensor MiniMaxM2::forward(std::span<const SequenceInput> batch, const KvPool& pool,
                          ForwardObserver* observer) const {
    return forward_step(batch, pool, observer, [](const Tensor& logits) {
        return logits.device().is_host() ? logits : logits.to(Device::host());
    });
}

TopLogits MiniMaxM2::forward_top_k(std::span<const SequenceInput> batch, const KvPool& pool,
                                   int64_t k) const {
    return forward_step(batch, pool, nullptr, [k](const Tensor& logits) {
        TopLogits top{Tensor::zeros(DType::f32, {logits.dim(0), k}, logits.device()),
                      Tensor::zeros(DType::i32, {logits.dim(0), k}, logits.device())};
        top_k_rows(logits, k, top.values, top.ids);
        if (logits.device().is_host()) return top;
        return TopLogits{top.values.to(Device::host()), top.ids.to(Device::host())};
    });
}

void MiniMaxM2::run_step(const StepIndices& step, const KvPool& pool, StepActivations& a,
                         ForwardObserver* observer) const {
    const MiniMaxM2Config& c = weights_.config;
    const float eps = static_cast<float>(c.rms_norm_eps);
    const AttentionShape attention_shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim};
    const RopeShape q_rope{c.num_attention_heads, c.head_dim, c.rotary_dim, c.rope_theta};
    const RopeShape k_rope{c.num_key_value_heads, c.head_dim, c.rotary_dim, c.rope_theta};
    const bool on_host = weights_.device().is_host();

    OpTimer timer(weights_.device());
    embedding(step.ids, weights_.embed_tokens, a.x);
    timer.mark("embedding");
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const LayerWeights& layer = weights_.layers[l];
        const KvLayer kv = pool.layer(l);

        // Attention. The previous MoE block's output joins the residual stream as this block's
        // input is normed (one op: add_rms_norm), in the dtype its projections read best (an
        // observer sees it in f32, as the CPU has it).
        Tensor& attention_in =
            observer == nullptr && attention_input_dtype(layer) == DType::bf16 ? a.h_bf16 : a.h;
        if (l == 0) {
            rms_norm(a.x, layer.input_norm, eps, attention_in);
        } else {
            add_rms_norm(a.x, a.block_out, layer.input_norm, eps, attention_in);
        }
        timer.mark("add_rms_norm");
        if (observer) observer->attention_input(l, a.h);
        if (layer.qkv.defined()) {
            linear_stacked(attention_in, layer.qkv, {&a.q, &a.k, &a.v});  // one kernel, three
        } else {
            linear(attention_in, layer.q, a.q);  // [T, Q]
            linear(attention_in, layer.k, a.k);  // [T, KV]
            linear(attention_in, layer.v, a.v);  // [T, KV]
        }
        timer.mark("linear q, k, v");
        // QK-norm is "per_layer": one RMS over the token's whole q (all heads), and one over
        // its whole k, not per head; and it comes before RoPE, which is partial: only the first
        // rotary_dim of each head's head_dim dimensions rotate. Then every token's keys and
        // values are written, before any attention reads (see the header's NOTE).
        // One op, so that a decode step's kernels may fold the first three into attention.
        Tensor& attended = observer == nullptr && linear_activation_dtype(layer.o) == DType::bf16
                               ? a.attended_bf16
                               : a.attended;
        attention_with_prologue(a.q, a.k, a.v, {layer.q_norm, layer.k_norm, eps}, q_rope, k_rope,
                                step.paged, kv, attention_shape, attended);
        timer.mark("attention_with_prologue");
        if (observer) observer->attention_output(l, a.attended);
        linear(attended, layer.o, a.block_out);  // [T, H]
        timer.mark("linear o");

        // MoE: its normed input, the router's logits ([T, E], f32 whatever the weight's dtype)
        // and the routing in one op; it selects by sigmoid + bias but weighs by the sigmoid alone.
        // The router reads h in f32; the experts read it in the dtype they read best, which the
        // same op writes too (a.h_bf16 is free again: q/k/v have read it).
        const bool experts_read_bf16 = !on_host && observer == nullptr &&
                                       moe_activation_dtype(layer.grouped_experts) == DType::bf16;
        moe_router(a.x, a.block_out, layer.post_attention_norm, eps, layer.router,
                   layer.routing_bias, c.num_experts_per_tok, a.h, a.router_logits, a.expert_ids,
                   a.expert_weights, experts_read_bf16 ? &a.h_bf16 : nullptr);
        timer.mark("add_rms_norm and router");
        if (observer) observer->moe_input(l, a.h, a.expert_ids);
        // The experts as this device holds them: the checkpoint's list on the host, grouped
        // once at load on a CUDA device.
        if (on_host) {
            moe_experts(a.h, a.expert_ids, a.expert_weights, layer.experts, a.block_out);
        } else {
            moe_experts(experts_read_bf16 ? a.h_bf16 : a.h, a.expert_ids, a.expert_weights,
                        layer.grouped_experts, a.block_out);
        }
        timer.mark("moe_experts");
    }
    add(a.x, a.block_out);

    // Only the rows whose logits are wanted go through the final norm and the head (a gather
    // of rows, which is what the embedding op is).
    if (step.logit_rows.dim(0) == 0) return;
    embedding(step.logit_rows, a.x, a.final_rows);
    rms_norm(a.final_rows, weights_.final_norm, eps, a.final_rows);
    linear(a.final_rows, weights_.lm_head, a.logits);  // [R, V]
    timer.mark("final norm and lm_head");
}

}  // namespace fourbit
