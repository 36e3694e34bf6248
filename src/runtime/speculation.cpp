#include "runtime/speculation.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "util/error.h"

namespace fourbit {

SpeculativeConfig parse_speculative_config(const std::string& text) {
    nlohmann::json json;
    try {
        json = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& error) {
        fail("--speculative-config is not JSON: {}", error.what());
    }
    if (!json.is_object()) fail("--speculative-config must be a JSON object");
    SpeculativeConfig config;
    auto integer = [&](const char* key, int64_t low, int64_t high) -> std::optional<int64_t> {
        if (!json.contains(key)) return std::nullopt;
        if (!json[key].is_number_integer()) fail("--speculative-config: {} must be an integer", key);
        const int64_t value = json[key].get<int64_t>();
        if (value < low || value > high) {
            fail("--speculative-config: {} must be in [{}, {}], got {}", key, low, high, value);
        }
        return value;
    };
    for (const auto& [key, value] : json.items()) {
        static const char* const known[] = {"method",
                                            "num_speculative_tokens",
                                            "prompt_lookup_min",
                                            "prompt_lookup_max",
                                            "adaptive",
                                            "draft_token_cost",
                                            "disable_batch_size"};
        if (std::find_if(std::begin(known), std::end(known),
                         [&](const char* k) { return key == k; }) == std::end(known)) {
            fail("--speculative-config: unsupported field \"{}\"", key);
        }
    }
    if (!json.contains("method") || json["method"] != "ngram") {
        fail("--speculative-config: method must be \"ngram\" (the only one fourbit has)");
    }
    const auto k = integer("num_speculative_tokens", 1, 64);
    if (!k) fail("--speculative-config: num_speculative_tokens is required");
    config.num_speculative_tokens = *k;
    const auto low = integer("prompt_lookup_min", 1, 1024);
    const auto high = integer("prompt_lookup_max", 1, 1024);
    config.prompt_lookup_min = low ? *low : high ? *high : 5;
    config.prompt_lookup_max = high ? *high : low ? *low : 5;
    if (config.prompt_lookup_min > config.prompt_lookup_max) {
        fail("--speculative-config: prompt_lookup_min {} is above prompt_lookup_max {}",
             config.prompt_lookup_min, config.prompt_lookup_max);
    }
    if (json.contains("adaptive")) {
        if (!json["adaptive"].is_boolean()) fail("--speculative-config: adaptive must be a boolean");
        config.adaptive = json["adaptive"].get<bool>();
    }
    if (json.contains("draft_token_cost")) {
        if (!json["draft_token_cost"].is_number() || json["draft_token_cost"].get<double>() < 0) {
            fail("--speculative-config: draft_token_cost must be a number >= 0");
        }
        config.draft_token_cost = json["draft_token_cost"].get<double>();
    }
    if (const auto batch = integer("disable_batch_size", 1, 1 << 20)) {
        config.disable_batch_size = *batch;
    }
    return config;
}

SpeculativeConfig speculative_profile(const std::string& profile) {
    if (profile == "throughput") return {};
    if (profile == "agentic") {
        SpeculativeConfig config;
        config.num_speculative_tokens = 8;
        config.prompt_lookup_min = 8;
        config.prompt_lookup_max = 16;
        return config;
    }
    fail("unknown --profile \"{}\" (throughput or agentic)", profile);
}

std::vector<int32_t> propose_ngram_draft(std::span<const int32_t> tokens, int64_t min_n,
                                         int64_t max_n, int64_t k) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (k <= 0 || min_n < 1 || n < min_n + 1) return {};
    // Candidate occurrences end at `end` < n - 1 (so at least one token follows), scanned from
    // the most recent; the first longest match wins.
    int64_t best_length = 0, best_end = -1;
    for (int64_t end = n - 2; end >= min_n - 1; --end) {
        int64_t length = 0;
        while (length < max_n && end - length >= 0 &&
               tokens[end - length] == tokens[n - 1 - length]) {
            ++length;
        }
        if (length >= min_n && length > best_length) {
            best_length = length;
            best_end = end;
            if (length == max_n) break;
        }
    }
    if (best_end < 0) return {};
    const int64_t first = best_end + 1;
    const int64_t last = std::min(n, first + k);
    return std::vector<int32_t>(tokens.begin() + first, tokens.begin() + last);
}

int64_t best_draft_length(double acceptance, double cost, int64_t k_max) {
    int64_t best = 0;
    double best_rate = 1.0;  // k = 0: one token per plain step
    double expected = 1.0, power = 1.0;
    for (int64_t k = 1; k <= k_max; ++k) {
        power *= acceptance;
        expected += power;
        const double rate = expected / (1.0 + cost * static_cast<double>(k));
        if (rate > best_rate) {
            best_rate = rate;
            best = k;
        }
    }
    return best;
}

int64_t DraftLengthPolicy::choose(const SpeculativeConfig& config, int64_t running_sequences) {
    if (!config.enabled() || running_sequences >= config.disable_batch_size) return 0;
    if (!config.adaptive) return config.num_speculative_tokens;
    const int64_t k =
        best_draft_length(acceptance_, config.draft_token_cost, config.num_speculative_tokens);
    if (k > 0) return k;
    // Not worth it at the current estimate; probe now and then, since text changes.
    if (++steps_without_drafts_ >= kProbeInterval) {
        steps_without_drafts_ = 0;
        return 1;
    }
    return 0;
}

void DraftLengthPolicy::observe(int64_t drafted, int64_t accepted) {
    if (drafted <= 0) return;
    // Position by position, each draft token is a Bernoulli trial until the first rejection:
    // `accepted` successes, then one failure unless all were taken.
    for (int64_t i = 0; i < accepted; ++i) acceptance_ += kSmoothing * (1.0 - acceptance_);
    if (accepted < drafted) acceptance_ += kSmoothing * (0.0 - acceptance_);
}

}  // namespace fourbit
