// N-gram speculative decoding's token logic (engine.md §4): the proposer, which drafts the
// tokens that followed an earlier occurrence of the sequence's own suffix, and the adaptive
// policy, which picks each sequence's draft length from its recent acceptance so that drafting
// stops where verification costs more than it saves. No model here: the engine verifies.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace fourbit {

// vLLM's --speculative-config for method "ngram", plus our adaptive knobs.
struct SpeculativeConfig {
    int64_t num_speculative_tokens = 0;  // k_max; 0: no speculation
    int64_t prompt_lookup_min = 5;       // shortest suffix match that proposes (vLLM: 5)
    int64_t prompt_lookup_max = 5;       // longest suffix match looked for
    bool adaptive = true;                // false: always draft k_max when a match exists
    // The cost of verifying one more token, relative to a plain decode step: a step that
    // verifies k drafts costs 1 + draft_token_cost * k. 0.55 is MiniMax-M2 at batch 1, where
    // each extra token reads ~7 more of 256 experts (engine.md §4.5).
    double draft_token_cost = 0.55;
    int64_t disable_batch_size = 8;  // no drafts while this many sequences or more run

    bool enabled() const { return num_speculative_tokens > 0; }
};

// Parses vLLM's JSON spelling ({"method":"ngram","num_speculative_tokens":K,
// "prompt_lookup_min":m,"prompt_lookup_max":M}, plus "adaptive", "draft_token_cost" and
// "disable_batch_size"); an Error names the field. Unset bounds follow vLLM: both 5 when
// neither is set, otherwise the missing one equals the other.
SpeculativeConfig parse_speculative_config(const std::string& json);
// The deployment profiles: "throughput" (no speculation) and "agentic" (copy-mode n-gram:
// drafts of up to 8 tokens after suffix matches of 8 to 16, adaptive). Unknown: Error.
SpeculativeConfig speculative_profile(const std::string& profile);

// Up to `k` tokens that followed the most recent earlier occurrence of the longest suffix of
// `tokens` whose length is in [min_n, max_n]; empty when there is none. The most recent, not
// the earliest (vLLM's choice): in an agent's context the latest copy of a span (the file as
// last edited, the last tool call) is the one most likely repeated. O(len(tokens) * max_n).
std::vector<int32_t> propose_ngram_draft(std::span<const int32_t> tokens, int64_t min_n,
                                         int64_t max_n, int64_t k);

// One sequence's draft length, from an exponential moving average of its per-position
// acceptance probability a: the k in [0, k_max] that maximises expected tokens per step,
// (1 + a + ... + a^k) / (1 + cost * k). k = 0 while that does not beat a plain decode; every
// kProbeInterval steps at k = 0 it tries k = 1 to re-measure a.
class DraftLengthPolicy {
public:
    static constexpr double kInitialAcceptance = 0.8;
    static constexpr double kSmoothing = 0.1;  // EMA weight of the newest verification
    static constexpr int64_t kProbeInterval = 16;

    int64_t choose(const SpeculativeConfig& config, int64_t running_sequences);
    // After a verification: `drafted` tokens proposed, the first `accepted` of them taken.
    void observe(int64_t drafted, int64_t accepted);
    double acceptance() const { return acceptance_; }

private:
    double acceptance_ = kInitialAcceptance;
    int64_t steps_without_drafts_ = 0;
};

// The k that maximises (1 + a + ... + a^k) / (1 + cost * k) over [0, k_max].
int64_t best_draft_length(double acceptance, double cost, int64_t k_max);

}  // namespace fourbit
