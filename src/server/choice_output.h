// One choice's output, token by token, in the order engine.md §5 sets: detokenize -> stop
// strings -> reasoning and tool-call parsers. The same object serves streaming (a delta per
// token) and whole answers (the message at the end), so the two cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/stop_strings.h"
#include "text/message_parser.h"
#include "text/tokenizer.h"

namespace fourbit {

struct ChoiceOutputOptions {
    bool parse = true;  // chat: reasoning and tool calls; false: plain text (completions)
    ParserOptions parser;
    std::string forced_output;  // a forced tool call's start (prompt.h), fed to the parser first
    std::vector<std::string> stop;
    bool include_stop_str_in_output = false;
    bool skip_special_tokens = true;
    bool parallel_tool_calls = true;  // false: only the first call is kept (vLLM drops the rest)
};

// Appends `next` to `into`: texts concatenated, tool-call pieces of one index joined.
void merge_delta(MessageDelta& into, MessageDelta next);

class ChoiceOutput {
public:
    ChoiceOutput(const Tokenizer& tokenizer, ChoiceOutputOptions options);

    // One generated token: what it adds to the output (often nothing, while text is held back).
    // The first token's delta also carries what the forced text produced.
    MessageDelta push_token(int32_t token_id);
    // End of the output (any reason): whatever was held back.
    MessageDelta finish();

    // A stop string ended the output at the last token pushed: push no more.
    bool stopped() const { return stop_.matched(); }
    int64_t n_tokens() const { return n_tokens_; }
    // The generated text as the client sees it (stop strings applied, forced text excluded).
    const std::string& text() const { return text_; }
    // The whole message (call after finish()): the parse of forced text + text() (plain mode:
    // content only).
    ParsedMessage message() const;
    // OpenAI's finish_reason given the engine's ("stop", "length", "cancelled", "error"):
    // "stop" for a stop string; "tool_calls" only when complete calls were parsed and none was
    // cut off; "length" when max_tokens or the context cut the output.
    std::string finish_reason(std::string_view engine_reason) const;

private:
    MessageDelta parse(std::string_view text);

    ChoiceOutputOptions options_;
    Tokenizer tokenizer_;
    StreamDetokenizer detokenizer_;
    StopStringMatcher stop_;
    StreamingMessageParser parser_;
    MessageDelta pending_;  // the forced text's delta, until the first token
    std::string text_;
    int64_t n_tokens_ = 0;
    bool finished_ = false;
};

}  // namespace fourbit
