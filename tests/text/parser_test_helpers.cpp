#include "text/parser_test_helpers.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "text/utf8.h"

namespace fourbit::parser_test {

namespace {

std::vector<GoldenCase> load_cases() {
    const std::string path = FOURBIT_SOURCE_DIR "/tests/golden/parsers/cases.json";
    std::ifstream file(path);
    if (!file) throw std::runtime_error("cannot read " + path);
    const nlohmann::json root = nlohmann::json::parse(file);
    std::vector<GoldenCase> cases;
    for (const nlohmann::json& item : root.at("cases")) {
        GoldenCase golden;
        golden.name = item.at("name");
        golden.note = item.at("note");
        golden.text = item.at("text");
        golden.expected = item.at("expected");
        const nlohmann::json options = item.value("options", nlohmann::json::object());
        golden.options.reasoning =
            reasoning_parser_from_name(options.value("reasoning", "minimax_m2"));
        golden.options.tools = tool_call_parser_from_name(options.value("tools", "minimax_m2"));
        golden.options.prompt_opens_think = options.value("prompt_opens_think", true);
        if (!item.contains("tools")) {
            golden.options.tool_schemas = root.at("tool_sets").at("default");
        } else if (item.at("tools").is_string()) {
            golden.options.tool_schemas =
                root.at("tool_sets").at(item.at("tools").get<std::string>());
        } else {
            golden.options.tool_schemas = item.at("tools");
        }
        golden.options.tool_call_ids = seeded_tool_call_ids(kIdSeed);
        cases.push_back(std::move(golden));
    }
    return cases;
}

bool is_json_object(const std::string& text) {
    const nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    return !value.is_discarded() && value.is_object();
}

std::string show(const std::optional<std::string>& text) {
    return text ? fmt::format("\"{}\"", printable(*text)) : std::string("null");
}

}  // namespace

const std::vector<GoldenCase>& golden_cases() {
    static const std::vector<GoldenCase> cases = load_cases();
    return cases;
}

const GoldenCase& golden_case(std::string_view name) {
    for (const GoldenCase& golden : golden_cases()) {
        if (golden.name == name) return golden;
    }
    throw std::runtime_error("no golden case " + std::string(name));
}

StreamResult stream(const std::vector<std::string_view>& chunks, const ParserOptions& options) {
    StreamingMessageParser parser(options);
    StreamResult result;
    std::string content, reasoning;
    std::vector<ToolCall> calls;
    auto broken = [&](const std::string& rule) {
        if (result.contract_error.empty()) result.contract_error = rule;
    };
    auto apply = [&](const MessageDelta& delta) {
        if (!utf8::is_valid(delta.content) || !utf8::is_valid(delta.reasoning_content)) {
            broken("a text delta is not valid UTF-8");
        }
        content += delta.content;
        reasoning += delta.reasoning_content;
        for (const ToolCallDelta& call : delta.tool_calls) {
            if (call.index == static_cast<int>(calls.size())) {
                if (!call.id || !call.name) {
                    broken(fmt::format("first delta of call {} lacks id or name", call.index));
                }
                calls.push_back({call.id.value_or(""), call.name.value_or(""), call.arguments});
                if (!utf8::is_valid(calls.back().name)) broken("a name is not valid UTF-8");
            } else if (call.index >= 0 && call.index < static_cast<int>(calls.size())) {
                if (call.id || call.name)
                    broken(fmt::format("call {} announced twice", call.index));
                if (is_json_object(calls[call.index].arguments)) {
                    broken(fmt::format("arguments of call {} after it closed", call.index));
                }
                calls[call.index].arguments += call.arguments;
            } else {
                broken(fmt::format("call index {} out of order", call.index));
            }
            if (!utf8::is_valid(call.arguments)) broken("arguments are not valid UTF-8");
        }
    };
    for (std::string_view chunk : chunks) apply(parser.push(chunk));
    apply(parser.finish());
    if (!content.empty()) result.message.content = content;
    if (!reasoning.empty()) result.message.reasoning_content = reasoning;
    for (size_t i = 0; i < calls.size(); ++i) {
        if (is_json_object(calls[i].arguments)) {
            result.message.tool_calls.push_back(calls[i]);
        } else {
            ++result.unclosed_calls;
            if (i + 1 != calls.size()) broken(fmt::format("call {} never closed", i));
        }
    }
    result.message.truncated_tool_call = parser.truncated_tool_call();
    if (result.unclosed_calls > 0 && !result.message.truncated_tool_call) {
        broken("an unclosed call without truncation");
    }
    return result;
}

std::vector<std::string_view> split_at(std::string_view text, const std::vector<size_t>& cuts) {
    std::vector<std::string_view> chunks;
    size_t from = 0;
    for (size_t cut : cuts) {
        chunks.push_back(text.substr(from, cut - from));
        from = cut;
    }
    chunks.push_back(text.substr(from));
    return chunks;
}

std::string difference(const ParsedMessage& expected, const ParsedMessage& actual) {
    std::string out;
    if (expected.content != actual.content) {
        out += fmt::format("content: expected {}, got {}\n", show(expected.content),
                           show(actual.content));
    }
    if (expected.reasoning_content != actual.reasoning_content) {
        out += fmt::format("reasoning_content: expected {}, got {}\n",
                           show(expected.reasoning_content), show(actual.reasoning_content));
    }
    if (expected.tool_calls.size() != actual.tool_calls.size()) {
        out += fmt::format("tool calls: expected {}, got {}\n", expected.tool_calls.size(),
                           actual.tool_calls.size());
    }
    for (size_t i = 0; i < std::min(expected.tool_calls.size(), actual.tool_calls.size()); ++i) {
        const ToolCall& want = expected.tool_calls[i];
        const ToolCall& got = actual.tool_calls[i];
        if (want.id != got.id) out += fmt::format("call {} id: {} vs {}\n", i, want.id, got.id);
        if (want.name != got.name) {
            out += fmt::format("call {} name: {} vs {}\n", i, printable(want.name),
                               printable(got.name));
        }
        if (want.arguments != got.arguments) {
            out += fmt::format("call {} arguments:\n  expected {}\n  got      {}\n", i,
                               printable(want.arguments), printable(got.arguments));
        }
    }
    if (expected.truncated_tool_call != actual.truncated_tool_call) {
        out += fmt::format("truncated_tool_call: expected {}, got {}\n",
                           expected.truncated_tool_call, actual.truncated_tool_call);
    }
    return out;
}

ParsedMessage expected_message(const GoldenCase& golden, const ParsedMessage& actual) {
    ParsedMessage message;
    const nlohmann::json& expected = golden.expected;
    if (!expected.at("content").is_null()) message.content = expected.at("content");
    if (!expected.at("reasoning_content").is_null()) {
        message.reasoning_content = expected.at("reasoning_content");
    }
    const nlohmann::json& calls = expected.at("tool_calls");
    for (size_t i = 0; i < calls.size(); ++i) {
        message.tool_calls.push_back(
            {i < actual.tool_calls.size() ? actual.tool_calls[i].id : std::string(),
             calls[i].at("name"), calls[i].at("arguments")});
    }
    message.truncated_tool_call = expected.at("truncated_tool_call");
    return message;
}

std::string printable(std::string_view text, size_t limit) {
    std::string out;
    for (size_t i = 0; i < text.size() && i < limit; ++i) {
        const char c = text[i];
        if (c == '\n')
            out += "\\n";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\\')
            out += "\\\\";
        else if (static_cast<unsigned char>(c) < 0x20)
            out += fmt::format("\\x{:02x}", c);
        else
            out += c;
    }
    if (text.size() > limit) out += "...";
    return out;
}

}  // namespace fourbit::parser_test
