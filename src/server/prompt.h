// Validated requests -> prompt token ids and engine requests: the chat template, tool_choice
// forcing, the context-length check and the sampling defaults.
//
// Forcing a tool call (tool_choice "required" or a named function). There is no grammar
// engine; instead the prompt is extended with the start of the call, so that the model can only
// continue inside it:
//   named:    <rendered prompt ending "<think>\n"> + "</think>\n\n<minimax:tool_call>\n<invoke
//   name=\"NAME\">\n" required: <rendered prompt ending "<think>\n"> +
//   "</think>\n\n<minimax:tool_call>\n<invoke name=\""
// The think block is closed empty first (the call follows the reasoning in the model's own
// format, and a forced call has nothing to reason about). The appended text is part of the
// prompt (prompt_tokens counts it) and is also fed to the output parser before the first
// generated token, as if the model had written it, so the answer carries a normal tool call.
// With "required" the model writes the function name itself. A call the model does not finish
// within max_tokens ends with finish_reason "length" and no tool_calls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "server/request_schema.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace fourbit {

struct ChatPrompt {
    std::string text;  // the rendered prompt, forced text included
    std::vector<int32_t> token_ids;
    std::string forced_output;  // the text appended for tool_choice: the parser's first input
    bool opens_think = false;   // the output starts inside the reasoning (before forcing)
};

// What is appended to a prompt for `choice` ("" for none and auto); `prompt_opens_think`: the
// rendered prompt ends inside an open think block (the generation prompt's "<think>\n").
std::string forced_tool_call_text(const ToolChoice& choice, bool prompt_opens_think);

ChatPrompt build_chat_prompt(const ChatCompletionSpec& spec, const ChatTemplate& chat_template,
                             const Tokenizer& tokenizer);

// max_tokens for a prompt of `prompt_tokens`: the request's, or the rest of the context. 400
// naming both numbers when they do not fit in `max_model_len`.
int64_t resolve_max_tokens(std::optional<int64_t> requested, int64_t prompt_tokens,
                           int64_t max_model_len);

// 400 naming the index when an id is outside [0, vocab_size).
void check_prompt_token_ids(const std::vector<int32_t>& ids, int64_t vocab_size,
                            const std::string& name);

// The engine request of choice `choice_index`: the request's sampling over the checkpoint's
// defaults; a seeded request gives choice i the seed + i, so n choices differ yet repeat.
GenerationRequest make_generation_request(const GenerationSpec& spec,
                                          const std::vector<int32_t>& prompt_ids,
                                          int64_t max_tokens, const SamplingParams& defaults,
                                          const std::vector<int64_t>& eos_token_ids,
                                          int64_t choice_index);

}  // namespace fourbit
