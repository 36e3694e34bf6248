#include "quantize/starved_experts.h"

#include <algorithm>
#include <map>

#include "util/error.h"

namespace fourbit {

namespace {

// Plan indices of a layer's router and of each expert's w1 (w2 and w3 follow).
struct LayerModules {
    int64_t router = -1;
    std::vector<int64_t> expert_w1;
};

std::map<int64_t, LayerModules> layer_modules(const QuantizationPlan& plan) {
    std::map<int64_t, LayerModules> layers;
    for (size_t i = 0; i < plan.modules.size(); ++i) {
        const LinearModule& module = plan.modules[i];
        if (module.layer < 0) continue;
        if (module.prefix.ends_with("block_sparse_moe.gate")) {
            layers[module.layer].router = static_cast<int64_t>(i);
        } else if (module.prefix.ends_with(".w1")) {
            layers[module.layer].expert_w1.push_back(static_cast<int64_t>(i));
        }
    }
    return layers;
}

}  // namespace

StarvedExperts find_starved_experts(const QuantizationPlan& plan, const CalibrationState& state,
                                    int64_t min_tokens) {
    StarvedExperts out;
    for (const auto& [layer, modules] : layer_modules(plan)) {
        for (size_t e = 0; e < modules.expert_w1.size(); ++e) {
            if (!plan.quantized[modules.expert_w1[e]]) continue;
            ++out.n_experts_checked;
            const int64_t tokens = state.tokens_of_expert(layer, static_cast<int64_t>(e));
            if (tokens < min_tokens) out.starved.push_back({layer, static_cast<int64_t>(e), tokens});
        }
    }
    return out;
}

std::vector<float> rescue_starved_experts(const QuantizationPlan& plan,
                                          const CalibrationState& state,
                                          const StarvedExperts& starved, double abort_percent) {
    if (starved.percent() > abort_percent) {
        std::string examples;
        for (size_t i = 0; i < std::min<size_t>(starved.starved.size(), 5); ++i) {
            const StarvedExpert& s = starved.starved[i];
            examples += fmt::format("{}layer {} expert {} ({} tokens)", i ? ", " : "", s.layer,
                                    s.expert, s.n_tokens);
        }
        fail("{} of {} experts ({:.2f}%) are starved, more than STARVED_EXPERT_PCT_ABORT = {}%: "
             "{}{}; calibrate on more (or more varied) data",
             starved.starved.size(), starved.n_experts_checked, starved.percent(), abort_percent,
             examples, starved.starved.size() > 5 ? ", ..." : "");
    }
    std::vector<float> amax = state.input_amax;
    if (starved.starved.empty()) return amax;
    const std::map<int64_t, LayerModules> layers = layer_modules(plan);
    std::map<int64_t, std::vector<int64_t>> starved_by_layer;
    for (const StarvedExpert& s : starved.starved) starved_by_layer[s.layer].push_back(s.expert);
    for (const auto& [layer, experts] : starved_by_layer) {
        const LayerModules& modules = layers.at(layer);
        std::vector<uint8_t> is_starved(modules.expert_w1.size(), 0);
        for (int64_t e : experts) is_starved[e] = 1;
        float sibling_w2 = 0.0f;
        for (size_t e = 0; e < modules.expert_w1.size(); ++e) {
            if (!is_starved[e]) sibling_w2 = std::max(sibling_w2, amax[modules.expert_w1[e] + 1]);
        }
        const float router_input = amax[modules.router];
        if (!(sibling_w2 > 0) || !(router_input > 0)) {
            fail("layer {}: every expert is starved; nothing to rescue them from", layer);
        }
        for (int64_t e : experts) {
            const int64_t w1 = modules.expert_w1[e];
            amax[w1] = router_input;      // w1
            amax[w1 + 2] = router_input;  // w3
            amax[w1 + 1] = sibling_w2;    // w2
        }
    }
    return amax;
}

}  // namespace fourbit
