#include "model/step_buffers.h"

#include <algorithm>
#include <bit>

namespace fourbit {

namespace {

// Powers of two: a server's varying batch sizes settle on a few sizes quickly.
int64_t capacity_for(int64_t rows) {
    return static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(std::max<int64_t>(rows, 1))));
}

}  // namespace

Tensor StepBuffers::grown(Tensor& buffer, DType dtype, Device device, int64_t rows,
                          int64_t cols) {
    if (!buffer.defined() || buffer.dim(0) < rows || buffer.device() != device) {
        buffer = Tensor::zeros(dtype, {capacity_for(rows), cols}, device);
        ++generation_;
    }
    return buffer.rows(0, rows);
}

StepActivations StepBuffers::activations(const MiniMaxM2Config& c, Device device, int64_t T,
                                         int64_t R) {
    if (device.is_host()) {
        // No bf16 copies: host weights read f32 activations (linear_activation_dtype).
        auto f32 = [](int64_t rows, int64_t cols) { return Tensor::zeros(DType::f32, {rows, cols}); };
        return {f32(T, c.hidden_size),
                f32(T, c.hidden_size),
                Tensor(),
                f32(T, c.q_width()),
                f32(T, c.kv_width()),
                f32(T, c.kv_width()),
                f32(T, c.q_width()),
                Tensor(),
                f32(T, c.hidden_size),
                f32(T, c.num_local_experts),
                Tensor::zeros(DType::i32, {T, c.num_experts_per_tok}),
                f32(T, c.num_experts_per_tok),
                f32(R, c.hidden_size),
                f32(R, c.vocab_size)};
    }
    auto f32 = [&](Tensor& buffer, int64_t rows, int64_t cols) {
        return grown(buffer, DType::f32, device, rows, cols);
    };
    return {f32(x_, T, c.hidden_size),
            f32(h_, T, c.hidden_size),
            grown(h_bf16_, DType::bf16, device, T, c.hidden_size),
            f32(q_, T, c.q_width()),
            f32(k_, T, c.kv_width()),
            f32(v_, T, c.kv_width()),
            f32(attended_, T, c.q_width()),
            grown(attended_bf16_, DType::bf16, device, T, c.q_width()),
            f32(block_out_, T, c.hidden_size),
            f32(router_logits_, T, c.num_local_experts),
            grown(expert_ids_, DType::i32, device, T, c.num_experts_per_tok),
            f32(expert_weights_, T, c.num_experts_per_tok),
            f32(final_rows_, R, c.hidden_size),
            f32(logits_, R, c.vocab_size)};
}

Tensor StepBuffers::indices(Device device, int64_t n) {
    if (!indices_.defined() || indices_.dim(0) < n || indices_.device() != device) {
        indices_ = Tensor::zeros(DType::i32, {capacity_for(n)}, device);
        ++generation_;
    }
    return indices_.rows(0, n);
}

}  // namespace fourbit
