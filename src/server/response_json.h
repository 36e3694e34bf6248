// What the server sends: OpenAI chat.completion / text_completion objects, their streamed
// chunks as SSE events, usage, logprobs and error objects. Pure formatting, no I/O.
//
// Beyond OpenAI's fields: every choice and chunk carries `token_ids` (the generated ids it
// stands for, as vLLM's return_token_ids gives them, so clients such as llama-benchy count
// tokens exactly), and reasoning is sent under both `reasoning_content` and `reasoning` (the
// older and the newer vLLM name).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/api_error.h"
#include "text/message_parser.h"
#include "text/tokenizer.h"

namespace fourbit {

// What every object of one response shares.
struct ResponseHeader {
    std::string id;  // "chatcmpl-..." or "cmpl-..."
    int64_t created = 0;
    std::string model;
};

// "chatcmpl-" / "cmpl-" + 32 random hex digits.
std::string make_response_id(std::string_view prefix);

struct Usage {
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
};
nlohmann::ordered_json usage_json(const Usage& usage);

// One generated token's log-probability and the alternatives the engine reported.
struct TokenLogprob {
    int32_t token_id = 0;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // most likely first
};

// The token as text (its bytes, invalid UTF-8 replaced) for logprobs entries.
std::string token_text(const Tokenizer& tokenizer, int32_t token_id);

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}, ...]}.
nlohmann::ordered_json chat_logprobs_json(const Tokenizer& tokenizer,
                                          std::span<const TokenLogprob> tokens);
// Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}; `text_offsets[i]`
// is where token i's text starts in the choice's text (in characters).
nlohmann::ordered_json completion_logprobs_json(const Tokenizer& tokenizer,
                                                std::span<const TokenLogprob> tokens,
                                                std::span<const int64_t> text_offsets);

// A chat delta: only the fields it has (role first when `with_role`).
nlohmann::ordered_json chat_delta_json(const MessageDelta& delta, bool with_role);
// A whole assistant message.
nlohmann::ordered_json chat_message_json(const ParsedMessage& message);

// One choice of a streamed chunk or of a whole answer.
struct ChoiceJson {
    int64_t index = 0;
    nlohmann::ordered_json body;      // chat: the delta or message; completions: the text
    nlohmann::ordered_json logprobs;  // null when not asked for
    std::optional<std::string> finish_reason;
    std::vector<int32_t> token_ids;
};

// chat.completion.chunk / text_completion (streamed) with these choices; `usage` is omitted
// when nullopt (null or an object otherwise).
nlohmann::ordered_json chat_chunk_json(const ResponseHeader& header,
                                       const std::vector<ChoiceJson>& choices,
                                       const std::optional<nlohmann::ordered_json>& usage);
nlohmann::ordered_json completion_chunk_json(const ResponseHeader& header,
                                             const std::vector<ChoiceJson>& choices,
                                             const std::optional<nlohmann::ordered_json>& usage);
// Whole answers. `prompt_token_ids`: added (vLLM's return_token_ids) unless nullopt.
nlohmann::ordered_json chat_completion_json(
    const ResponseHeader& header, const std::vector<ChoiceJson>& choices, const Usage& usage,
    const std::optional<std::vector<int32_t>>& prompt_token_ids);
nlohmann::ordered_json completion_json(const ResponseHeader& header,
                                       const std::vector<ChoiceJson>& choices, const Usage& usage);

// {"error": {"message", "type", "param", "code"}}; param and code null when empty.
nlohmann::ordered_json error_json(const ApiError& error);

// JSON text; invalid UTF-8 (which should never reach here) is replaced, never thrown on.
std::string dump_json(const nlohmann::ordered_json& json);
// "data: <json>\n\n"
std::string sse_event(const nlohmann::ordered_json& json);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";
// A comment line: keeps the connection alive (and probes it) while nothing else is sent.
inline constexpr std::string_view kSsePing = ": ping\n\n";

}  // namespace fourbit
