// The built-in MiniMax-M2 renderer: models/templates/minimax_m2_chat_template.jinja in C++.
// Each block below names the template lines it reproduces; the whitespace is what the template
// produces under transformers' trim_blocks and lstrip_blocks.
#include "text/chat_template.h"

#include <cstddef>
#include <string_view>
#include <vector>

#include "text/python_json.h"
#include "util/error.h"

namespace fourbit {

namespace {

constexpr std::string_view kToolsHeader =
    "\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n<tools>\n";
// The literal example after the tool list, closing with the end of the tool-call block.
constexpr std::string_view kToolsFooter =
    "</tools>\n\n"
    "When making tool calls, use XML format to invoke tools and pass parameters:\n"
    "\n<minimax:tool_call>\n"
    "<invoke name=\"tool-name-1\">\n"
    "<parameter name=\"param-key-1\">param-value-1</parameter>\n"
    "<parameter name=\"param-key-2\">param-value-2</parameter>\n"
    "...\n"
    "</invoke>\n"
    "</minimax:tool_call>";

// Python's str.strip('\n').
std::string_view strip_newlines(std::string_view text) {
    const size_t begin = text.find_first_not_of('\n');
    if (begin == std::string_view::npos) return {};
    return text.substr(begin, text.find_last_not_of('\n') - begin + 1);
}

// text.split(separator)[0] and text.split(separator)[-1].
std::string_view before_first(std::string_view text, std::string_view separator) {
    return text.substr(0, text.find(separator));
}
std::string_view after_last(std::string_view text, std::string_view separator) {
    const size_t at = text.rfind(separator);
    return at == std::string_view::npos ? text : text.substr(at + separator.size());
}

// {{- build_system_message(system_message) }} and the tool list.
void render_system_turn(std::string& out, const ChatRequest& request, const ChatMessage* system,
                        const std::string& identity) {
    out += "]~!b[]~b]system\n";
    if (system && system->content.is_truthy()) {
        out += system->content.visible_text();
    } else {
        out += request.model_identity ? *request.model_identity : identity;
    }
    if (system && system->current_date && !system->current_date->empty()) {
        out += "\nCurrent date: " + *system->current_date;
    }
    if (system && system->current_location && !system->current_location->empty()) {
        out += "\nCurrent location: " + *system->current_location;
    }
    if (!request.tools.empty()) {
        out += kToolsHeader;
        for (size_t i = 0; i < request.tools.size(); ++i) {
            // <tool>{{ tool.function | tojson(ensure_ascii=False) }}</tool>
            const nlohmann::ordered_json& tool = request.tools[i];
            if (!tool.is_object() || !tool.contains("function")) {
                fail("tools[{}] has no function", i);  // parse_chat_request refuses these
            }
            out += "<tool>";
            append_python_json(out, tool["function"]);
            out += "</tool>\n";
        }
        out += kToolsFooter;
    }
    out += "[e~[\n";
}

// An assistant turn; `keep_reasoning` is `loop.index0 > ns.last_user_index`.
void render_assistant(std::string& out, const ChatMessage& message, bool keep_reasoning) {
    out += "]~b]ai\n";
    const std::string visible = message.content.visible_text();
    std::string_view content = visible;
    std::string_view reasoning;
    if (message.reasoning_content) {
        reasoning = *message.reasoning_content;
    } else if (content.find("</think>") != std::string_view::npos) {
        // content.split('</think>')[0].strip('\n').split('<think>')[-1].strip('\n'), and the
        // content is what follows the last </think>.
        reasoning = strip_newlines(
            after_last(strip_newlines(before_first(content, "</think>")), "<think>"));
        content = strip_newlines(after_last(content, "</think>"));
    }
    if (!reasoning.empty() && keep_reasoning) {
        out += "<think>\n";
        out += reasoning;
        out += "\n</think>\n\n";
    }
    out += content;
    if (!message.tool_calls.empty()) {
        out += "\n<minimax:tool_call>\n";
        for (const ChatToolCall& call : message.tool_calls) {
            out += "<invoke name=\"" + call.name + "\">\n";
            for (const auto& [key, value] : call.arguments.items()) {
                // {{- v | tojson(ensure_ascii=False) if v is not string else v }}
                out += "<parameter name=\"" + key + "\">";
                if (value.is_string()) {
                    out += value.get_ref<const std::string&>();
                } else {
                    append_python_json(out, value);
                }
                out += "</parameter>\n";
            }
            out += "</invoke>\n";
        }
        out += "</minimax:tool_call>";
    }
    out += "[e~[\n";
}

// A tool result; a run of consecutive tool messages shares one ]~b]tool header and one end.
void render_tool(std::string& out, const ChatMessage& message, bool first_of_run,
                 bool last_of_run) {
    if (first_of_run) out += "]~b]tool";
    if (!message.content.is_list) {
        out += "\n<response>";
        out += message.content.text;
        out += "</response>";
    } else {
        // NOTE: the list form puts a newline before </response>; the string form does not.
        for (const std::string& part : message.content.parts) {
            out += "\n<response>";
            out += part;
            out += "\n</response>";
        }
    }
    if (last_of_run) out += "[e~[\n";
}

}  // namespace

std::string ChatTemplate::render(const ChatRequest& request) const {
    return render(request, request.add_generation_prompt);
}

std::string ChatTemplate::render(const ChatRequest& request, bool add_generation_prompt) const {
    const std::vector<ChatMessage>& messages = request.messages;
    // Only a leading system message is the system turn; the loop below skips any later one.
    const ChatMessage* system =
        !messages.empty() && messages[0].role == ChatRole::system ? &messages[0] : nullptr;
    const size_t first = system ? 1 : 0;  // conversation_messages = messages[first:]
    const size_t n_conversation = messages.size() - first;
    auto conversation = [&](size_t i) -> const ChatMessage& { return messages[first + i]; };

    // ns.last_user_index: reasoning is kept only in assistant turns after it.
    ptrdiff_t last_user_index = -1;
    for (size_t i = 0; i < n_conversation; ++i) {
        if (conversation(i).role == ChatRole::user) last_user_index = static_cast<ptrdiff_t>(i);
    }

    std::string out;
    render_system_turn(out, request, system, identity_);

    // last_tool_call.name is not none: the latest assistant turn had tool calls.
    bool after_tool_call = false;
    for (size_t i = 0; i < n_conversation; ++i) {
        const ChatMessage& message = conversation(i);
        switch (message.role) {
            case ChatRole::assistant:
                render_assistant(out, message, static_cast<ptrdiff_t>(i) > last_user_index);
                after_tool_call = !message.tool_calls.empty();
                break;
            case ChatRole::tool:
                if (!after_tool_call) {
                    fail(
                        "messages[{}] has role tool, but there was no previous assistant message "
                        "with a tool call",
                        first + i);
                }
                render_tool(out, message, i == 0 || conversation(i - 1).role != ChatRole::tool,
                            i + 1 == n_conversation || conversation(i + 1).role != ChatRole::tool);
                break;
            case ChatRole::user:
                out += "]~b]user\n";
                out += message.content.visible_text();
                out += "[e~[\n";
                break;
            case ChatRole::system:
                break;
        }
    }
    if (add_generation_prompt) out += "]~b]ai\n<think>\n";
    return out;
}

}  // namespace fourbit
