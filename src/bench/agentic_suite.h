// The agentic prompt suite (bench/suites/agentic.json, compiled in): each task streamed with the
// suite's tools and sampling; tool calls checked (known tool, JSON-object arguments, required
// parameters) and answered with the task's simulated results until the model stops calling or
// the turn limit; per task the wall-clock, tokens, decode rate and calls.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bench/api_client.h"

namespace fourbit::bench {

// The suite that `--suite agentic` names (bench/suites/agentic.json as compiled in).
const std::string& embedded_agentic_suite();

// Checks a suite document: an Error naming the task and field that is wrong (unknown tool,
// missing messages, ...), so a bad --suite-file never fails halfway through a run.
void validate_suite(const nlohmann::json& suite, const std::string& source);

// One tool call the model made, assembled from the streamed deltas.
struct ToolCall {
    std::string id, name, arguments;
    bool valid = false;
    std::string problem;  // why it is not valid
};
// Valid: `name` is one of `offered` (name -> {description, parameters}), `arguments` parse as a
// JSON object, and every parameter the schema requires is present.
void check_tool_call(ToolCall& call, const nlohmann::json& offered);

struct AgenticOptions {
    std::string model;
    std::optional<int64_t> max_tokens;  // caps each task's max_tokens
};

// Runs every task of `suite` (validated) and returns the report document ("kind": "agentic").
nlohmann::ordered_json run_agentic_suite(const Endpoint& endpoint, const nlohmann::json& suite,
                                         const AgenticOptions& options);

std::string agentic_markdown(const nlohmann::json& report);

}  // namespace fourbit::bench
