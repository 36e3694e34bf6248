// --speculative-config and --profile, shared by `serve` and `generate`.
#include "cli/speculative_flags.h"

#include "util/error.h"

namespace fourbit {

void add_speculative_flags(CLI::App& command, SpeculativeFlags& flags) {
    command.add_option("--speculative-config", flags.config_json,
                       "vLLM's JSON, e.g. '{\"method\":\"ngram\",\"num_speculative_tokens\":8,"
                       "\"prompt_lookup_min\":8,\"prompt_lookup_max\":16}' (+ \"adaptive\", "
                       "\"draft_token_cost\", \"disable_batch_size\")");
    command
        .add_option("--profile", flags.profile,
                    "throughput (no speculation) or agentic (adaptive n-gram speculation)")
        ->check(CLI::IsMember({"throughput", "agentic"}));
}

SpeculativeConfig resolve_speculative_flags(const SpeculativeFlags& flags) {
    if (!flags.config_json.empty() && !flags.profile.empty()) {
        fail("give --speculative-config or --profile, not both");
    }
    if (!flags.config_json.empty()) return parse_speculative_config(flags.config_json);
    return speculative_profile(flags.profile.empty() ? "throughput" : flags.profile);
}

}  // namespace fourbit
