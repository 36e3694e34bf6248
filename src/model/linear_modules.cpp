#include "model/linear_modules.h"

#include <fmt/format.h>

namespace fourbit {

std::vector<LinearModule> minimax_m2_linear_modules(const MiniMaxM2Config& c) {
    std::vector<LinearModule> modules;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const std::string layer = fmt::format("model.layers.{}.", l);
        const std::string qkv = layer + "self_attn.qkv_proj";
        modules.push_back({layer + "self_attn.q_proj", c.q_width(), c.hidden_size, l, qkv});
        modules.push_back({layer + "self_attn.k_proj", c.kv_width(), c.hidden_size, l, qkv});
        modules.push_back({layer + "self_attn.v_proj", c.kv_width(), c.hidden_size, l, qkv});
        modules.push_back({layer + "self_attn.o_proj", c.hidden_size, c.q_width(), l, ""});
        modules.push_back(
            {layer + "block_sparse_moe.gate", c.num_local_experts, c.hidden_size, l, ""});
        for (int64_t e = 0; e < c.num_local_experts; ++e) {
            const std::string expert = fmt::format("{}block_sparse_moe.experts.{}.", layer, e);
            const std::string w13 = expert + "w13";
            modules.push_back({expert + "w1", c.intermediate_size, c.hidden_size, l, w13});
            modules.push_back({expert + "w2", c.hidden_size, c.intermediate_size, l, ""});
            modules.push_back({expert + "w3", c.intermediate_size, c.hidden_size, l, w13});
        }
    }
    modules.push_back({"lm_head", c.vocab_size, c.hidden_size, -1, ""});
    return modules;
}

}  // namespace fourbit
