// The OpenAI request bodies the server accepts (chat completions, completions, and vLLM's
// /tokenize and /detokenize), validated into plain structs. Every field is type-checked and
// range-checked here, so the routes never see a malformed value; a bad one is an ApiError
// naming the field. Unknown fields are ignored; known fields the server cannot honour
// (response_format json_schema, logit_bias, penalties, ...) are a 400 saying so.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "text/chat_request.h"
#include "text/message_parser.h"

namespace fourbit {

// What validation depends on in the server's own settings.
struct RequestLimits {
    std::vector<std::string> served_model_names;  // the first is the name answers carry
    bool enable_auto_tool_choice = false;         // --enable-auto-tool-choice
    ToolCallParser tool_call_parser = ToolCallParser::minimax_m2;
    int64_t max_n = 128;        // choices per request
    int64_t max_logprobs = 20;  // top_logprobs (chat) / logprobs (completions) at most
    int64_t max_stop_strings = 16;
    int64_t max_stop_string_bytes = 256;
    int64_t max_json_depth = 128;  // nesting of the request body (deeper: 400, never a crash)
};

// Sampling fields the request set; the rest come from generation_config.json.
struct SamplingOverrides {
    std::optional<double> temperature, top_p, min_p;
    std::optional<int64_t> top_k;
    std::optional<uint64_t> seed;
};

// The fields chat completions and completions share.
struct GenerationSpec {
    std::string model;  // the name the answer carries: the requested one, else the first served
    bool stream = false;
    bool include_usage = false;           // stream_options.include_usage
    bool continuous_usage_stats = false;  // stream_options.continuous_usage_stats (vLLM)
    int64_t n = 1;
    std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens
    SamplingOverrides sampling;
    std::vector<std::string> stop;            // non-empty strings
    bool include_stop_str_in_output = false;  // vLLM
    std::vector<int64_t> stop_token_ids;      // vLLM; besides the model's EOS
    bool ignore_eos = false;                  // vLLM
    bool logprobs = false;
    int64_t top_logprobs = 0;
    bool return_token_ids = false;  // vLLM: the prompt's ids in the answer too
    bool skip_special_tokens = true;
};

enum class ToolChoiceKind { none, automatic, required, named };

struct ToolChoice {
    ToolChoiceKind kind = ToolChoiceKind::none;
    std::string name;  // for named
};

struct ChatCompletionSpec {
    GenerationSpec generation;
    ChatRequest chat;
    ToolChoice tool_choice;
    bool parallel_tool_calls = true;
    nlohmann::json tool_schemas;  // the tools array for the parser (null when none)
};

// A /v1/completions prompt: text to tokenize, or token ids as sent.
struct CompletionPrompt {
    std::optional<std::string> text;
    std::vector<int32_t> token_ids;
};

struct CompletionSpec {
    GenerationSpec generation;
    std::vector<CompletionPrompt> prompts;  // a batch: n choices for each
};

struct TokenizeSpec {
    std::optional<std::string> prompt;  // {"prompt": ...}
    std::optional<ChatRequest> chat;    // or {"messages": ...}
    bool return_token_strs = false;
};

struct DetokenizeSpec {
    std::vector<int32_t> tokens;
};

// The body's JSON as Python reads it (key order kept: tool schemas are printed in it). 400 when
// it is not JSON, is nested deeper than limits.max_json_depth, or is not an object.
nlohmann::ordered_json parse_request_body(std::string_view body, const RequestLimits& limits);

ChatCompletionSpec parse_chat_completion_request(const nlohmann::ordered_json& body,
                                                 const RequestLimits& limits);
CompletionSpec parse_completion_request(const nlohmann::ordered_json& body,
                                        const RequestLimits& limits);
TokenizeSpec parse_tokenize_request(const nlohmann::ordered_json& body,
                                    const RequestLimits& limits);
DetokenizeSpec parse_detokenize_request(const nlohmann::ordered_json& body,
                                        const RequestLimits& limits);

// The name an answer carries for the body's `model`: 404 model_not_found when it names none of
// the served models; the first served name when absent.
std::string resolve_model_name(const nlohmann::ordered_json& body, const RequestLimits& limits);

}  // namespace fourbit
