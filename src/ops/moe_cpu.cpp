#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/cpu/kernels.h"
#include "ops/moe.h"
#include "tensor/numeric.h"

namespace fourbit::cpu {

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights) {
    const int64_t n_tokens = router_logits.dim(0), n_experts = router_logits.dim(1);
    std::vector<float> bias_values(n_experts, 0.0f);
    const int64_t n_bias = bias.defined() ? bias.numel() : 0;
    for (int64_t e = 0; e < n_bias; ++e) {
        bias_values[e] = bias.dtype() == DType::bf16 ? bf16_to_f32(bias.data<uint16_t>()[e])
                                                     : bias.data<float>()[e];
    }
    std::vector<float> scores(n_experts), choice(n_experts);
    std::vector<int32_t> order(n_experts);
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float* logits = router_logits.data<float>() + t * n_experts;
        for (int64_t e = 0; e < n_experts; ++e) {
            scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
            choice[e] = scores[e] + bias_values[e];
        }
        std::iota(order.begin(), order.end(), 0);
        // Descending by the biased score, the lower id first among equals; a score that is no
        // number to compare (NaN from a broken model, or not above -FLT_MAX) after every one
        // that is, by id, so that the order is strict and weak and such a row still names
        // distinct experts (the CUDA routing picks alike).
        const auto comparable = [&](int32_t e) { return choice[e] > -FLT_MAX; };
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
            if (comparable(a) != comparable(b)) return comparable(a);
            if (!comparable(a)) return a < b;
            return choice[a] > choice[b] || (choice[a] == choice[b] && a < b);
        });
        std::sort(order.begin(), order.begin() + k);
        float total = 0;
        for (int64_t j = 0; j < k; ++j) total += scores[order[j]];
        for (int64_t j = 0; j < k; ++j) {
            expert_ids.data<int32_t>()[t * k + j] = order[j];
            expert_weights.data<float>()[t * k + j] = scores[order[j]] / total;
        }
    }
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
    const int64_t n = gate.numel();
    const float* g = gate.data<float>();
    const float* u = up.data<float>();
    float* o = out.data<float>();
    for (int64_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out) {
    const int64_t n_tokens = h.dim(0), hidden = h.dim(1), k = expert_ids.dim(1);
    const int32_t* ids = expert_ids.data<int32_t>();
    const float* weights = expert_weights.data<float>();
    float* result = out.data<float>();
    std::fill(result, result + out.numel(), 0.0f);

    // Tokens by expert: which (token, slot) pairs each expert serves.
    std::vector<std::vector<int64_t>> routed(experts.size());
    for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t j = 0; j < k; ++j) routed[ids[t * k + j]].push_back(t * k + j);
    }
    for (size_t e = 0; e < experts.size(); ++e) {
        const std::vector<int64_t>& slots = routed[e];
        if (slots.empty()) continue;
        const ExpertWeights& expert = experts[e];
        const int64_t n = static_cast<int64_t>(slots.size());
        const int64_t width = expert.gate.rows();
        Tensor x = Tensor::zeros(DType::f32, {n, hidden});
        for (int64_t i = 0; i < n; ++i) {
            const float* row = h.data<float>() + (slots[i] / k) * hidden;
            std::copy(row, row + hidden, x.data<float>() + i * hidden);
        }
        Tensor gate = Tensor::zeros(DType::f32, {n, width});
        Tensor up = Tensor::zeros(DType::f32, {n, width});
        cpu::linear(x, expert.gate, gate);
        cpu::linear(x, expert.up, up);
        cpu::swiglu(gate, up, gate);
        Tensor down = Tensor::zeros(DType::f32, {n, hidden});
        cpu::linear(gate, expert.down, down);
        const Kernels& kernels = cpu::kernels();
        for (int64_t i = 0; i < n; ++i) {
            kernels.axpy(weights[slots[i]], down.data<float>() + i * hidden,
                         result + (slots[i] / k) * hidden, hidden);
        }
    }
}

}  // namespace fourbit::cpu
