// libFuzzer target for the reasoning and tool-call parsers (src/text/message_parser.h).
//
// Input: byte 0 holds flags (bit 0: prompt_opens_think; bits 1-3: how many chunk lengths
// follow, 0-7), then that many bytes, each the length of the next chunk; the rest is the model
// output. The text is streamed in those chunks (the last one takes what remains) with both
// reasoning modes and a fixed tool schema, and the assembled deltas must equal parse_message
// of the whole text: same content, reasoning, ids, names and arguments, same truncation.
// Every completed call's arguments must be a JSON object, every string valid UTF-8, and an
// announced call may stay unclosed only when the text ended inside a tool-call block.
// Any mismatch aborts with a description.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/message_parser.h"
#include "text/utf8.h"

namespace {

using namespace fourbit;

const nlohmann::json& tool_schemas() {
    static const nlohmann::json tools = nlohmann::json::parse(R"([
      {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"},
        "b": {"type": "boolean"}, "o": {"type": "object"}, "a": {"type": "array"},
        "u": {"anyOf": [{"type": "integer"}, {"type": "null"}, {"enum": ["x", 1.5]}]},
        "d": {"type": "date"}}}}},
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}, "days": {"type": "integer"}}}}},
      {"name": "bare", "parameters": {"properties": {"k": {"type": ["object", "string"]}}}}
    ])");
    return tools;
}

[[noreturn]] void mismatch(const char* what, std::string_view text, const std::string& expected,
                           const std::string& actual) {
    std::fprintf(stderr, "parser_fuzz: %s\n  text:     %s\n  expected: %s\n  actual:   %s\n", what,
                 nlohmann::json(std::string(text))
                     .dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)
                     .c_str(),
                 expected.c_str(), actual.c_str());
    std::abort();
}

void check(bool condition, const char* what, std::string_view text) {
    if (!condition) mismatch(what, text, "", "");
}

bool is_json_object(const std::string& text) {
    const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    return !value.is_discarded() && value.is_object();
}

std::string show(const std::optional<std::string>& text) {
    return text
               ? nlohmann::json(*text).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)
               : "null";
}

void run(std::string_view text, const std::vector<std::string_view>& chunks,
         ReasoningParser reasoning, bool prompt_opens_think) {
    ParserOptions options;
    options.reasoning = reasoning;
    options.tools = ToolCallParser::minimax_m2;
    options.tool_schemas = tool_schemas();
    options.prompt_opens_think = prompt_opens_think;
    options.tool_call_ids = seeded_tool_call_ids(1);
    const ParsedMessage whole = parse_message(text, options);

    StreamingMessageParser parser(options);
    std::string content, reasoning_content;
    std::vector<ToolCall> calls;
    auto apply = [&](const MessageDelta& delta) {
        check(utf8::is_valid(delta.content) && utf8::is_valid(delta.reasoning_content),
              "text delta is not UTF-8", text);
        content += delta.content;
        reasoning_content += delta.reasoning_content;
        int previous_index = -1;
        for (const ToolCallDelta& call : delta.tool_calls) {
            check(call.index > previous_index, "two deltas of one index in one push", text);
            previous_index = call.index;
            check(utf8::is_valid(call.arguments), "arguments are not UTF-8", text);
            if (call.index == static_cast<int>(calls.size())) {
                check(call.id.has_value() && call.name.has_value(), "first delta lacks id/name",
                      text);
                check(utf8::is_valid(*call.name), "name is not UTF-8", text);
                calls.push_back({*call.id, *call.name, call.arguments});
            } else {
                check(call.index >= 0 && call.index < static_cast<int>(calls.size()),
                      "call index out of order", text);
                check(!call.id && !call.name, "call announced twice", text);
                check(!is_json_object(calls[call.index].arguments), "arguments after the close",
                      text);
                calls[call.index].arguments += call.arguments;
            }
        }
    };
    for (std::string_view chunk : chunks) apply(parser.push(chunk));
    apply(parser.finish());

    if (show(whole.content) != show(content.empty() ? std::nullopt : std::optional(content))) {
        mismatch("content", text, show(whole.content), show(content));
    }
    if (show(whole.reasoning_content) !=
        show(reasoning_content.empty() ? std::nullopt : std::optional(reasoning_content))) {
        mismatch("reasoning_content", text, show(whole.reasoning_content), show(reasoning_content));
    }
    if (whole.truncated_tool_call != parser.truncated_tool_call()) {
        mismatch("truncated_tool_call", text, std::to_string(whole.truncated_tool_call),
                 std::to_string(parser.truncated_tool_call()));
    }
    std::vector<ToolCall> completed;
    for (size_t i = 0; i < calls.size(); ++i) {
        if (is_json_object(calls[i].arguments)) {
            completed.push_back(calls[i]);
        } else {
            check(i + 1 == calls.size() && parser.truncated_tool_call(),
                  "a call left open without truncation", text);
        }
    }
    if (completed.size() != whole.tool_calls.size()) {
        mismatch("number of tool calls", text, std::to_string(whole.tool_calls.size()),
                 std::to_string(completed.size()));
    }
    for (size_t i = 0; i < completed.size(); ++i) {
        const ToolCall& want = whole.tool_calls[i];
        const ToolCall& got = completed[i];
        check(is_json_object(want.arguments), "arguments are not a JSON object", text);
        check(utf8::is_valid(want.name) && utf8::is_valid(want.arguments), "call not UTF-8", text);
        if (want.id != got.id || want.name != got.name || want.arguments != got.arguments) {
            mismatch("tool call", text, want.id + " " + want.name + " " + want.arguments,
                     got.id + " " + got.name + " " + got.arguments);
        }
    }
    check(!whole.content || utf8::is_valid(*whole.content), "content not UTF-8", text);
    // The JSON forms must serialize without the replace handler: every string is UTF-8.
    (void)whole.to_openai_json().dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const bool prompt_opens_think = (data[0] & 1) != 0;
    const size_t n_lengths = (data[0] >> 1) & 7;
    if (size < 1 + n_lengths) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data) + 1 + n_lengths,
                                size - 1 - n_lengths);
    std::vector<std::string_view> chunks;
    size_t at = 0;
    for (size_t i = 0; i < n_lengths; ++i) {
        const size_t length = std::min<size_t>(data[1 + i], text.size() - at);
        chunks.push_back(text.substr(at, length));
        at += length;
    }
    chunks.push_back(text.substr(at));
    for (ReasoningParser reasoning :
         {ReasoningParser::minimax_m2, ReasoningParser::minimax_m2_append_think}) {
        run(text, chunks, reasoning, prompt_opens_think);
    }
    // Byte by byte as well: the finest split, where every held-back rule is exercised.
    if (text.size() <= 4096) {
        std::vector<std::string_view> bytes;
        for (size_t i = 0; i < text.size(); ++i) bytes.push_back(text.substr(i, 1));
        run(text, bytes, ReasoningParser::minimax_m2, prompt_opens_think);
    }
    return 0;
}
