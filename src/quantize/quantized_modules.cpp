#include "quantize/quantized_modules.h"

#include "model/make_model.h"
#include "util/error.h"

namespace fourbit {

std::vector<std::string> default_ignore_list(const MiniMaxM2Config& config,
                                             QuantizationFormat format) {
    // The seed list of make-model is the release's list.
    return seed_ignore_list(config, format, true);
}

int64_t QuantizationPlan::n_quantized() const {
    int64_t n = 0;
    for (bool q : quantized) n += q ? 1 : 0;
    return n;
}

QuantizationPlan make_quantization_plan(const MiniMaxM2Config& config,
                                        const std::vector<std::string>& ignore) {
    QuantizationPlan plan;
    plan.modules = minimax_m2_linear_modules(config);
    plan.ignore = ignore;
    plan.n_layers = config.num_hidden_layers;
    std::vector<ModulePattern> patterns;
    for (const std::string& text : ignore) {
        patterns.push_back(ModulePattern::parse(text, "the ignore list"));
    }
    for (const LinearModule& module : plan.modules) {
        plan.quantized.push_back(first_match(patterns, module.prefix) == nullptr);
    }
    if (plan.quantized.back()) {
        fail("the ignore list must keep lm_head unquantized (fourbit quantize does not calibrate "
             "the head)");
    }
    // vLLM loads q/k/v and w1/w3 as one matrix: a fused group is quantized whole or not at all.
    for (size_t i = 0; i < plan.modules.size(); ++i) {
        for (size_t j = i + 1; j < plan.modules.size() && j < i + 3; ++j) {
            if (!plan.modules[i].fused_group.empty() &&
                plan.modules[i].fused_group == plan.modules[j].fused_group &&
                plan.quantized[i] != plan.quantized[j]) {
                fail("the ignore list splits the fused group {}: {} is {} but {} is not",
                     plan.modules[i].fused_group, plan.modules[i].prefix,
                     plan.quantized[i] ? "quantized" : "ignored", plan.modules[j].prefix);
            }
        }
    }
    return plan;
}

}  // namespace fourbit
