// Reasoning and tool-call parsing of MiniMax-M2 output: what the model generated (after the
// generation prompt) becomes an OpenAI assistant message, whole or as streamed deltas.
//
// Grammar (minimax_m2.md §6.1; the prompt usually pre-opens `<think>`):
//   [<think>] reasoning </think> content <minimax:tool_call> <invoke name="f">
//   <parameter name="k">value</parameter> ... </invoke> ... </minimax:tool_call>
//
// One incremental state machine serves both entry points: parse_message() is a stream fed the
// whole text at once, so for any split of a text the streamed deltas, assembled, equal the
// non-streaming message (tests check every split point; the fuzzer checks random ones).
//
// Semantics follow vLLM's MiniMaxM2ReasoningParser, MiniMaxM2AppendThinkReasoningParser and
// minimax_m2 tool parser (minimax_m2.md §6.2-6.3), with these deliberate differences:
//  1. String parameter values are kept verbatim: no strip() and no dropping of a leading or
//     trailing newline (vLLM PR #48846 made the same change): indentation and trailing
//     newlines of code are data. Non-string conversions (integer, number, boolean, null,
//     object, array) ignore surrounding ASCII whitespace.
//  2. The null words (null, none, nil; any case) become JSON null only where the schema admits
//     null or admits no string type; a string-typed parameter keeps the literal "null"/"None".
//     Parameters absent from the schema, and those of unknown tools, are strings. Calls to a
//     tool the request does not list are kept (vLLM checked no names before PR #45701).
//  3. An integer parameter accepts an integral decimal ("5.0", "1e3" -> 5, 1000; vLLM falls
//     back to a float). Integer literals are kept exact at any length (vLLM's number path
//     rounds them through a double). inf, nan and underscores are not numbers. object and
//     array accept only a JSON object or array respectively (vLLM takes any JSON value).
//  4. A repeated parameter name keeps its first value (streamed arguments cannot be taken
//     back; vLLM keeps the last), so arguments never hold duplicate keys.
//  5. A tool-call block is never content, even when it yields no call (vLLM then returns the
//     whole raw text as content). As in vLLM, text after the first block is dropped; later
//     blocks still parse.
//  6. Malformed invokes spoil only themselves: an `<invoke name=` header whose name is empty
//     or holds `<` or a newline yields no call; an invoke left open by the next `<invoke name=`
//     or by `</minimax:tool_call>` ends there with the parameters completed so far (vLLM's
//     regex would merge it with the next invoke). A parameter header whose name holds `<` or a
//     newline, or a parameter left open by `</invoke>` (as in vLLM), is dropped with its value.
//     A value ends at the first `</parameter>` (the format has no escaping, vLLM #44060).
//  7. Generation cut off inside a tool-call block never yields a call for the unfinished invoke:
//     the stream announced it (index, id, name) but never closes its arguments, the message
//     omits it, and `truncated_tool_call` is set so the server can say finish_reason "length".
//     Calls the block completed before the cut are kept.
//  8. Newlines that belong to the format, not the payload, are dropped: leading and trailing
//     newlines of reasoning_content (the template renders `<think>\n` + r + `\n</think>`),
//     leading newlines of content after `</think>` (split mode), and newlines of content just
//     before `<minimax:tool_call>`. vLLM keeps them ("\n\n" content before a call). Content
//     otherwise, and everything inside `<think>...</think>` in append-think mode, is verbatim.
//  9. Reasoning: an explicit `<think>` is recognised only at the start of the output (after
//     optional whitespace), in both modes, so M2.5's own `<think>` neither leaks into content
//     (vLLM #38212) nor doubles in append-think mode. Tool calls are parsed only after the
//     reasoning has ended (vLLM's non-streaming path also parses them inside the reasoning
//     in append-think mode). With `prompt_opens_think = false` the output starts as content
//     unless it opens with `<think>`. An empty message field is null, not "".
// 10. Every returned string is valid UTF-8: bytes that cannot be decoded become U+FFFD, and a
//     chunk ending inside a character holds that character back until it completes.
//
// Parsers never throw on model output; any text is valid input. Bad options (an unknown
// parser name, a `tools` that is not an array) are an Error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fourbit {

enum class ReasoningParser {
    none,                     // everything is content
    minimax_m2,               // reasoning_content and content, split at `</think>`
    minimax_m2_append_think,  // content = "<think>" + output: the thinking stays in content
};
enum class ToolCallParser { none, minimax_m2 };

// "none", "minimax_m2", "minimax_m2_append_think"; Error naming the value otherwise.
ReasoningParser reasoning_parser_from_name(std::string_view name);
// "none", "minimax_m2"; Error naming the value otherwise.
ToolCallParser tool_call_parser_from_name(std::string_view name);
std::string_view name_of(ReasoningParser parser);
std::string_view name_of(ToolCallParser parser);

// Makes the id of each tool call, in the order the calls are announced.
using ToolCallIdSource = std::function<std::string()>;
// "call_" + 24 random hex digits (96 bits from a per-thread engine seeded by random_device).
ToolCallIdSource random_tool_call_ids();
// The same form from a fixed seed: two sources with one seed give the same ids (tests).
ToolCallIdSource seeded_tool_call_ids(uint64_t seed);

struct ParserOptions {
    ReasoningParser reasoning = ReasoningParser::minimax_m2;
    ToolCallParser tools = ToolCallParser::minimax_m2;
    // The request's `tools` array (OpenAI {"type":"function","function":{name, parameters}}
    // or bare {name, parameters}), or null for none. Parameter values are converted by the
    // JSON schema of their tool's parameters.properties.
    nlohmann::json tool_schemas;
    // The generation prompt ended with `<think>` (the official template does), so the output
    // starts inside the reasoning.
    bool prompt_opens_think = true;
    // Empty: random_tool_call_ids().
    ToolCallIdSource tool_call_ids;
};

struct ToolCall {
    std::string id;  // "call_" + 24 hex digits
    std::string name;
    std::string arguments;  // a JSON object as text, Python json.dumps spacing: {"a": 1, "b": "x"}
};

struct ParsedMessage {
    std::optional<std::string> content, reasoning_content;
    std::vector<ToolCall> tool_calls;  // complete calls only
    // The text ended inside a tool-call block (cut off by max_tokens): the invoke it was in the
    // middle of is not in tool_calls.
    bool truncated_tool_call = false;
    // {"role": "assistant", "content", "reasoning_content", "tool_calls" (omitted when empty)}.
    nlohmann::json to_openai_json() const;
};

ParsedMessage parse_message(std::string_view text, const ParserOptions& options);

// One streamed piece of a tool call. The first delta of an index carries id and name (with
// whatever arguments arrived in the same push, often ""); later ones carry only argument text,
// whole parameters at a time: `{"a": 1` then `, "b": "x"` then `}` at `</invoke>` ("{}" for a
// call without parameters). One push gives at most one delta per index.
struct ToolCallDelta {
    int index = 0;
    std::optional<std::string> id, name;
    std::string arguments;
};

struct MessageDelta {
    // Within one delta the order is reasoning, then content, then tool calls.
    std::string content, reasoning_content;
    std::vector<ToolCallDelta> tool_calls;
    bool empty() const;
    // An OpenAI chat.completion.chunk `delta`: only the fields this delta has.
    nlohmann::json to_openai_json() const;
};

class StreamingMessageParser {
public:
    explicit StreamingMessageParser(ParserOptions options);
    ~StreamingMessageParser();
    StreamingMessageParser(StreamingMessageParser&&) noexcept;
    StreamingMessageParser& operator=(StreamingMessageParser&&) noexcept;

    // The next piece of generated text, split anywhere (inside a tag, inside a UTF-8
    // character). Returns what can be emitted now; a possible tag start is held back.
    MessageDelta push(std::string_view text);
    // End of generation: held-back text is flushed as what it turned out to be.
    MessageDelta finish();
    // After finish(): the text ended inside a tool-call block (see ParsedMessage).
    bool truncated_tool_call() const;

    class State;

private:
    std::unique_ptr<State> state_;
};

}  // namespace fourbit
