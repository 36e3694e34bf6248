// The incremental state machine behind parse_message and StreamingMessageParser: one pass over
// the bytes, holding back only what could still turn out to be a tag (or the rest of a UTF-8
// character), so the same code gives the same result however the text is split.
#include "text/message_parser.h"

#include <fmt/format.h>

#include <initializer_list>
#include <random>
#include <set>
#include <utility>

#include "text/tool_arguments.h"
#include "text/utf8.h"
#include "util/error.h"

namespace fourbit {

namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kBlockOpen = "<minimax:tool_call>";
constexpr std::string_view kBlockClose = "</minimax:tool_call>";
constexpr std::string_view kInvokeOpen = "<invoke name=";
constexpr std::string_view kInvokeClose = "</invoke>";
constexpr std::string_view kParameterOpen = "<parameter name=";
constexpr std::string_view kParameterClose = "</parameter>";

bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// The first of `tags` in `text`: its position and index in `tags`; or kPartialTag at the
// position where the text ends in a proper prefix of one (unless at_end: then it is text);
// or kNoTag at text.size().
constexpr int kNoTag = -1;
constexpr int kPartialTag = -2;
struct TagMatch {
    size_t position;
    int tag;
};

TagMatch find_tag(std::string_view text, std::initializer_list<std::string_view> tags,
                  bool at_end) {
    // NOTE: every tag has exactly one '<', its first byte, so a partial tag can only start at
    // the last '<' of the text, and a full match is never hidden inside another tag.
    for (size_t p = text.find('<'); p != std::string_view::npos; p = text.find('<', p + 1)) {
        const std::string_view rest = text.substr(p);
        bool partial = false;
        int index = 0;
        for (std::string_view tag : tags) {
            if (rest.starts_with(tag)) return {p, index};
            if (!at_end && rest.size() < tag.size() && tag.starts_with(rest)) partial = true;
            ++index;
        }
        if (partial) return {p, kPartialTag};
    }
    return {text.size(), kNoTag};
}

// vLLM's _extract_name: surrounding whitespace off, then one pair of matching quotes.
std::string clean_name(std::string_view raw) {
    while (!raw.empty() && is_ascii_space(raw.front())) raw.remove_prefix(1);
    while (!raw.empty() && is_ascii_space(raw.back())) raw.remove_suffix(1);
    if (raw.size() >= 2 && raw.front() == raw.back() &&
        (raw.front() == '"' || raw.front() == '\'')) {
        raw = raw.substr(1, raw.size() - 2);
    }
    return std::string(raw);
}

std::string format_tool_call_id(std::mt19937_64& engine) {
    const uint64_t high = engine();
    const uint64_t low = engine() & 0xffffffffu;
    return fmt::format("call_{:016x}{:08x}", high, low);
}

// One text field of the message (content or reasoning_content) as it is streamed, with the
// format's newlines taken off its ends (message_parser.h, difference 8).
class TextChannel {
public:
    // strip_leading: drop newlines before the first other character. hold_trailing: keep
    // trailing newlines back until more text follows, since a tag that drops them may come.
    void configure(bool strip_leading, bool hold_trailing) {
        strip_leading_ = strip_leading;
        hold_trailing_ = hold_trailing;
    }
    void write(std::string_view text, std::string& out) {
        if (strip_leading_ && !started_) {
            const size_t first = text.find_first_not_of('\n');
            if (first == std::string_view::npos) return;
            text.remove_prefix(first);
        }
        if (text.empty()) return;
        started_ = true;
        const size_t last = hold_trailing_ ? text.find_last_not_of('\n') : text.size() - 1;
        if (last == std::string_view::npos) {
            held_ += text;
            return;
        }
        out += held_;
        held_.clear();
        out.append(text.substr(0, last + 1));
        held_.assign(text.substr(last + 1));
    }
    // The field ends: held newlines are emitted (keep) or dropped.
    void close(bool keep, std::string& out) {
        if (keep) out += held_;
        held_.clear();
    }

private:
    bool strip_leading_ = false, hold_trailing_ = false, started_ = false;
    std::string held_;
};

}  // namespace

class StreamingMessageParser::State {
public:
    struct Call {
        std::string id, name, arguments;
        bool complete = false;
    };

    explicit State(ParserOptions options) : options_(std::move(options)) {
        if (!options_.tool_schemas.is_null() && !options_.tool_schemas.is_array()) {
            fail("tools must be an array of tool definitions, not a JSON {}",
                 options_.tool_schemas.type_name());
        }
        if (!options_.tool_call_ids) options_.tool_call_ids = random_tool_call_ids();
        if (options_.reasoning == ReasoningParser::none) enter_content(false);
    }

    void feed(std::string_view text) {
        FOURBIT_ASSERT(!finished_, "push() after finish()");
        buffer_.append(text);
        run(false);
    }

    void end() {
        FOURBIT_ASSERT(!finished_, "finish() called twice");
        finished_ = true;
        run(true);
        if (mode_ == Mode::start) resolve_start(false);
        truncated_ = mode_ == Mode::block || mode_ == Mode::invoke_name ||
                     mode_ == Mode::invoke_body || mode_ == Mode::parameter_name ||
                     mode_ == Mode::parameter_value;
        reasoning_.close(false, delta_.reasoning_content);
        if (mode_ == Mode::content) content_.close(true, delta_.content);
    }

    MessageDelta take() { return std::exchange(delta_, {}); }
    const std::vector<Call>& calls() const { return calls_; }
    bool truncated() const { return truncated_; }
    bool finished() const { return finished_; }

private:
    enum class Mode {
        start,            // before the first non-space byte: is there an explicit <think>?
        reasoning,        // inside <think>, until </think>
        content,          // answer text, until <minimax:tool_call>
        block,            // inside <minimax:tool_call>, between invokes
        invoke_name,      // after `<invoke name=`, until '>'
        invoke_body,      // inside an invoke, between parameters
        parameter_name,   // after `<parameter name=`, until '>'
        parameter_value,  // until </parameter>
        after_blocks,     // after a block: text is dropped, another block may open
    };

    // The invoke being read.
    struct Invoke {
        bool discarded = false;  // malformed header: read to its end, emit nothing
        int index = -1;
        const nlohmann::json* properties = nullptr;  // its tool's parameters.properties
        std::set<std::string> keys;
    };

    void run(bool at_end) {
        size_t position = 0;
        while (position < buffer_.size()) {
            const Mode before = mode_;
            const size_t used = step(std::string_view(buffer_).substr(position), at_end);
            position += used;
            if (used == 0 && mode_ == before) break;  // waiting for more bytes
        }
        buffer_.erase(0, position);
    }

    // Handles the start of `rest` in the current mode; returns the bytes consumed. Returns 0
    // without changing mode only when it needs more bytes to decide.
    size_t step(std::string_view rest, bool at_end) {
        switch (mode_) {
            case Mode::start:
                return step_start(rest, at_end);
            case Mode::reasoning:
                return step_reasoning(rest, at_end);
            case Mode::content:
                return step_content(rest, at_end);
            case Mode::block:
                return step_block(rest, at_end);
            case Mode::invoke_name:
                return step_invoke_name(rest);
            case Mode::invoke_body:
                return step_invoke_body(rest, at_end);
            case Mode::parameter_name:
                return step_parameter_name(rest);
            case Mode::parameter_value:
                return step_parameter_value(rest, at_end);
            case Mode::after_blocks:
                return step_after_blocks(rest, at_end);
        }
        return 0;
    }

    size_t step_start(std::string_view rest, bool at_end) {
        // The leading whitespace stays in the buffer until decided; start_spaces_ remembers how
        // much was checked so a long run of it arriving piece by piece is not rescanned.
        size_t spaces = start_spaces_;
        while (spaces < rest.size() && is_ascii_space(rest[spaces])) ++spaces;
        start_spaces_ = spaces;
        const std::string_view after = rest.substr(spaces);
        if (after.starts_with(kThinkOpen)) {
            resolve_start(true);
            return spaces + kThinkOpen.size();
        }
        if (!at_end && kThinkOpen.starts_with(after)) return 0;
        resolve_start(false);  // the bytes seen so far belong to the next mode
        return 0;
    }

    void resolve_start(bool explicit_think) {
        if (!explicit_think && !options_.prompt_opens_think) {
            enter_content(false);
            return;
        }
        mode_ = Mode::reasoning;
        if (options_.reasoning == ReasoningParser::minimax_m2_append_think) {
            content_.configure(false, false);
            content_.write(kThinkOpen, delta_.content);
        } else {
            reasoning_.configure(true, true);
        }
    }

    size_t step_reasoning(std::string_view rest, bool at_end) {
        const TagMatch match = find_tag(rest, {kThinkClose}, at_end);
        const bool append = options_.reasoning == ReasoningParser::minimax_m2_append_think;
        TextChannel& channel = append ? content_ : reasoning_;
        std::string& out = append ? delta_.content : delta_.reasoning_content;
        const size_t used =
            emit_text(rest.substr(0, match.position), match.tag == kNoTag, at_end, channel, out);
        if (match.tag < 0) return used;
        if (append) {
            content_.write(kThinkClose, delta_.content);
            enter_content(false);
        } else {
            reasoning_.close(false, delta_.reasoning_content);
            enter_content(true);
        }
        return match.position + kThinkClose.size();
    }

    void enter_content(bool strip_leading) {
        mode_ = Mode::content;
        content_.configure(strip_leading, options_.tools != ToolCallParser::none);
    }

    size_t step_content(std::string_view rest, bool at_end) {
        if (options_.tools == ToolCallParser::none) {
            return emit_text(rest, true, at_end, content_, delta_.content);
        }
        const TagMatch match = find_tag(rest, {kBlockOpen}, at_end);
        const size_t used = emit_text(rest.substr(0, match.position), match.tag == kNoTag, at_end,
                                      content_, delta_.content);
        if (match.tag < 0) return used;
        content_.close(false, delta_.content);
        mode_ = Mode::block;
        return match.position + kBlockOpen.size();
    }

    size_t step_after_blocks(std::string_view rest, bool at_end) {
        const TagMatch match = find_tag(rest, {kBlockOpen}, at_end);
        if (match.tag < 0) return match.position;
        mode_ = Mode::block;
        return match.position + kBlockOpen.size();
    }

    size_t step_block(std::string_view rest, bool at_end) {
        const TagMatch match = find_tag(rest, {kInvokeOpen, kBlockClose}, at_end);
        if (match.tag < 0) return match.position;  // text between invokes is dropped
        if (match.tag == 0) {
            name_.clear();
            mode_ = Mode::invoke_name;
            return match.position + kInvokeOpen.size();
        }
        mode_ = Mode::after_blocks;
        return match.position + kBlockClose.size();
    }

    size_t step_invoke_name(std::string_view rest) {
        const size_t end = rest.find_first_of(">\n<");
        if (end == std::string_view::npos) {
            name_.append(rest);
            return rest.size();
        }
        if (rest[end] != '>') {
            // `<` or a newline before '>': not a header. No call; read on as block text.
            mode_ = Mode::block;
            return end;
        }
        name_.append(rest.substr(0, end));
        start_invoke();
        return end + 1;
    }

    void start_invoke() {
        const std::string name = clean_name(name_);
        invoke_ = Invoke{};
        mode_ = Mode::invoke_body;
        if (name.empty()) {
            invoke_.discarded = true;
            return;
        }
        invoke_.index = static_cast<int>(calls_.size());
        invoke_.properties = find_tool_properties(options_.tool_schemas, name);
        Call call;
        call.id = options_.tool_call_ids();
        utf8::append_lossy(call.name, name);
        ToolCallDelta delta;
        delta.index = invoke_.index;
        delta.id = call.id;
        delta.name = call.name;
        delta_.tool_calls.push_back(std::move(delta));
        calls_.push_back(std::move(call));
    }

    size_t step_invoke_body(std::string_view rest, bool at_end) {
        const TagMatch match =
            find_tag(rest, {kParameterOpen, kInvokeClose, kInvokeOpen, kBlockClose}, at_end);
        if (match.tag < 0) return match.position;  // text between parameters is dropped
        switch (match.tag) {
            case 0:
                parameter_name_.clear();
                mode_ = Mode::parameter_name;
                return match.position + kParameterOpen.size();
            case 1:
                close_invoke();
                mode_ = Mode::block;
                return match.position + kInvokeClose.size();
            case 2:  // the invoke never closed: it ends here, the next one begins
                close_invoke();
                name_.clear();
                mode_ = Mode::invoke_name;
                return match.position + kInvokeOpen.size();
            default:
                close_invoke();
                mode_ = Mode::after_blocks;
                return match.position + kBlockClose.size();
        }
    }

    size_t step_parameter_name(std::string_view rest) {
        const size_t end = rest.find_first_of(">\n<");
        if (end == std::string_view::npos) {
            parameter_name_.append(rest);
            return rest.size();
        }
        if (rest[end] != '>') {
            // Not a parameter header: dropped, read on as invoke text.
            mode_ = Mode::invoke_body;
            return end;
        }
        parameter_name_.append(rest.substr(0, end));
        value_.clear();
        mode_ = Mode::parameter_value;
        return end + 1;
    }

    size_t step_parameter_value(std::string_view rest, bool at_end) {
        const TagMatch match = find_tag(rest, {kParameterClose, kInvokeClose, kBlockClose}, at_end);
        value_.append(rest.substr(0, match.position));
        if (match.tag < 0) return match.position;
        switch (match.tag) {
            case 0:
                finish_parameter();
                mode_ = Mode::invoke_body;
                return match.position + kParameterClose.size();
            case 1:  // the open parameter is dropped
                close_invoke();
                mode_ = Mode::block;
                return match.position + kInvokeClose.size();
            default:
                close_invoke();
                mode_ = Mode::after_blocks;
                return match.position + kBlockClose.size();
        }
    }

    void finish_parameter() {
        if (invoke_.discarded) return;
        const std::string key = clean_name(parameter_name_);
        if (key.empty() || !invoke_.keys.insert(key).second) return;  // first value wins
        const std::string value =
            convert_parameter_value(value_, parameter_types(invoke_.properties, key));
        const bool first = invoke_.keys.size() == 1;
        append_arguments((first ? "{" : ", ") + json_string_literal(key) + ": " + value);
    }

    void close_invoke() {
        if (invoke_.discarded) return;
        append_arguments(invoke_.keys.empty() ? "{}" : "}");
        calls_[invoke_.index].complete = true;
    }

    void append_arguments(const std::string& text) {
        calls_[invoke_.index].arguments += text;
        if (delta_.tool_calls.empty() || delta_.tool_calls.back().index != invoke_.index) {
            ToolCallDelta delta;
            delta.index = invoke_.index;
            delta_.tool_calls.push_back(std::move(delta));
        }
        delta_.tool_calls.back().arguments += text;
    }

    // Writes `text` to a channel as valid UTF-8. When the text runs to the end of what has
    // arrived (and more may come), an unfinished character at its end waits. Returns the
    // bytes used.
    static size_t emit_text(std::string_view text, bool runs_to_end, bool at_end,
                            TextChannel& channel, std::string& out) {
        const size_t length =
            runs_to_end && !at_end ? utf8::complete_prefix_length(text) : text.size();
        if (length == 0) return 0;
        std::string valid;
        utf8::append_lossy(valid, text.substr(0, length));
        channel.write(valid, out);
        return length;
    }

    ParserOptions options_;
    Mode mode_ = Mode::start;
    std::string buffer_;  // bytes not yet consumed
    TextChannel content_, reasoning_;
    size_t start_spaces_ = 0;  // leading whitespace bytes already seen in Mode::start
    std::string name_, parameter_name_, value_;
    Invoke invoke_;
    std::vector<Call> calls_;
    MessageDelta delta_;  // what the current push has produced
    bool truncated_ = false;
    bool finished_ = false;
};

ReasoningParser reasoning_parser_from_name(std::string_view name) {
    if (name == "none") return ReasoningParser::none;
    if (name == "minimax_m2") return ReasoningParser::minimax_m2;
    if (name == "minimax_m2_append_think") return ReasoningParser::minimax_m2_append_think;
    fail("unknown reasoning parser '{}' (expected none, minimax_m2 or minimax_m2_append_think)",
         name);
}

ToolCallParser tool_call_parser_from_name(std::string_view name) {
    if (name == "none") return ToolCallParser::none;
    if (name == "minimax_m2") return ToolCallParser::minimax_m2;
    fail("unknown tool-call parser '{}' (expected none or minimax_m2)", name);
}

std::string_view name_of(ReasoningParser parser) {
    switch (parser) {
        case ReasoningParser::none:
            return "none";
        case ReasoningParser::minimax_m2:
            return "minimax_m2";
        case ReasoningParser::minimax_m2_append_think:
            return "minimax_m2_append_think";
    }
    return "?";
}

std::string_view name_of(ToolCallParser parser) {
    return parser == ToolCallParser::minimax_m2 ? "minimax_m2" : "none";
}

ToolCallIdSource random_tool_call_ids() {
    return [] {
        thread_local std::mt19937_64 engine{[] {
            std::random_device device;
            return (static_cast<uint64_t>(device()) << 32) ^ device();
        }()};
        return format_tool_call_id(engine);
    };
}

ToolCallIdSource seeded_tool_call_ids(uint64_t seed) {
    return [engine = std::mt19937_64(seed)]() mutable { return format_tool_call_id(engine); };
}

nlohmann::json ParsedMessage::to_openai_json() const {
    nlohmann::json message = {
        {"role", "assistant"},
        {"content", content ? nlohmann::json(*content) : nullptr},
        {"reasoning_content", reasoning_content ? nlohmann::json(*reasoning_content) : nullptr}};
    if (!tool_calls.empty()) {
        nlohmann::json calls = nlohmann::json::array();
        for (const ToolCall& call : tool_calls) {
            calls.push_back({{"id", call.id},
                             {"type", "function"},
                             {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
        }
        message["tool_calls"] = std::move(calls);
    }
    return message;
}

bool MessageDelta::empty() const {
    return content.empty() && reasoning_content.empty() && tool_calls.empty();
}

nlohmann::json MessageDelta::to_openai_json() const {
    nlohmann::json delta = nlohmann::json::object();
    if (!reasoning_content.empty()) delta["reasoning_content"] = reasoning_content;
    if (!content.empty()) delta["content"] = content;
    if (!tool_calls.empty()) {
        nlohmann::json calls = nlohmann::json::array();
        for (const ToolCallDelta& call : tool_calls) {
            nlohmann::json item = {{"index", call.index}};
            nlohmann::json function = {{"arguments", call.arguments}};
            if (call.id) {
                item["id"] = *call.id;
                item["type"] = "function";
            }
            if (call.name) function["name"] = *call.name;
            item["function"] = std::move(function);
            calls.push_back(std::move(item));
        }
        delta["tool_calls"] = std::move(calls);
    }
    return delta;
}

StreamingMessageParser::StreamingMessageParser(ParserOptions options)
    : state_(std::make_unique<State>(std::move(options))) {}
StreamingMessageParser::~StreamingMessageParser() = default;
StreamingMessageParser::StreamingMessageParser(StreamingMessageParser&&) noexcept = default;
StreamingMessageParser& StreamingMessageParser::operator=(StreamingMessageParser&&) noexcept =
    default;

MessageDelta StreamingMessageParser::push(std::string_view text) {
    state_->feed(text);
    return state_->take();
}

MessageDelta StreamingMessageParser::finish() {
    state_->end();
    return state_->take();
}

bool StreamingMessageParser::truncated_tool_call() const { return state_->truncated(); }

ParsedMessage parse_message(std::string_view text, const ParserOptions& options) {
    StreamingMessageParser::State state(options);
    state.feed(text);
    state.end();
    MessageDelta all = state.take();
    ParsedMessage message;
    if (!all.content.empty()) message.content = std::move(all.content);
    if (!all.reasoning_content.empty())
        message.reasoning_content = std::move(all.reasoning_content);
    for (const StreamingMessageParser::State::Call& call : state.calls()) {
        if (call.complete) message.tool_calls.push_back({call.id, call.name, call.arguments});
    }
    message.truncated_tool_call = state.truncated();
    return message;
}

}  // namespace fourbit
