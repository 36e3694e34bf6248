// --speculative-config (vLLM's spelling) and --profile throughput|agentic, for the commands
// that generate.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "runtime/speculation.h"

namespace fourbit {

struct SpeculativeFlags {
    std::string config_json;
    std::string profile;
};

void add_speculative_flags(CLI::App& command, SpeculativeFlags& flags);
// The configuration the flags ask for (no speculation when neither is given).
SpeculativeConfig resolve_speculative_flags(const SpeculativeFlags& flags);

}  // namespace fourbit
