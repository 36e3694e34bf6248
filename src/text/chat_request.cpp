// Validation of OpenAI chat-completions request bodies into ChatRequest. Every error names the
// JSON path of the offending value and what was found there.
#include "text/chat_request.h"

#include "text/python_json.h"
#include "text/utf8.h"
#include "util/error.h"

namespace fourbit {

namespace {

using ordered_json = nlohmann::ordered_json;

// "a number (42)", "an array ([1, 2])": what was found, for error messages.
std::string found(const ordered_json& value) {
    const char* kind = "a value";
    switch (value.type()) {
        case ordered_json::value_t::null:
            return "null";
        case ordered_json::value_t::boolean:
            return value.get<bool>() ? "true" : "false";
        case ordered_json::value_t::string:
            kind = "a string";
            break;
        case ordered_json::value_t::number_integer:
        case ordered_json::value_t::number_unsigned:
        case ordered_json::value_t::number_float:
        case ordered_json::value_t::binary:
            kind = "a number";
            break;
        case ordered_json::value_t::object:
            kind = "an object";
            break;
        case ordered_json::value_t::array:
            kind = "an array";
            break;
        case ordered_json::value_t::discarded:
            break;
    }
    std::string text = python_json_dumps(value);
    if (text.size() > 60) {
        // Cut on a character boundary: the server returns this message as JSON.
        text = text.substr(0, utf8::complete_prefix_length(text.substr(0, 57))) + "...";
    }
    return fmt::format("{} ({})", kind, text);
}

// A string as a JSON literal, for error messages: control characters stay on one line.
std::string json_quoted(const std::string& text) { return python_json_dumps(text); }

// The member `key` of `object`, or nullptr when it is absent or null (OpenAI clients send null
// for "not set").
const ordered_json* member(const ordered_json& object, const char* key) {
    auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::optional<std::string> optional_string(const ordered_json& object, const char* key,
                                           const std::string& path) {
    const ordered_json* value = member(object, key);
    if (!value) return std::nullopt;
    if (!value->is_string()) fail("{}.{} must be a string, not {}", path, key, found(*value));
    return value->get<std::string>();
}

std::string required_string(const ordered_json& object, const char* key, const std::string& path) {
    std::optional<std::string> value = optional_string(object, key, path);
    if (!value) fail("{}.{} is missing", path, key);
    return *value;
}

void require_object(const ordered_json& value, const std::string& path) {
    if (!value.is_object()) fail("{} must be an object, not {}", path, found(value));
}

ChatContent parse_content(const ordered_json& message, const std::string& path) {
    ChatContent content;
    const ordered_json* value = member(message, "content");
    if (!value) return content;
    if (value->is_string()) {
        content.text = value->get<std::string>();
        return content;
    }
    if (!value->is_array()) {
        fail("{}.content must be a string, a list of content parts or null, not {}", path,
             found(*value));
    }
    content.is_list = true;
    for (size_t i = 0; i < value->size(); ++i) {
        const ordered_json& part = (*value)[i];
        const std::string part_path = fmt::format("{}.content[{}]", path, i);
        if (part.is_string()) {
            content.parts.push_back(part.get<std::string>());
            continue;
        }
        require_object(part, part_path);
        const std::string type = required_string(part, "type", part_path);
        if (type != "text") {
            fail(
                "{}.type {} is not supported: fourbit serves a text-only model (content parts "
                "must be {{\"type\": \"text\", \"text\": ...}})",
                part_path, json_quoted(type));
        }
        content.parts.push_back(required_string(part, "text", part_path));
    }
    return content;
}

// OpenAI sends arguments as a JSON string; the template iterates them as a mapping, so they are
// parsed here as vLLM does before rendering.
ordered_json parse_arguments(const ordered_json& function, const std::string& path) {
    const std::string arguments_path = path + ".arguments";
    const ordered_json* value = member(function, "arguments");
    if (!value) return ordered_json::object();
    if (value->is_object()) return *value;
    if (!value->is_string()) {
        fail("{} must be a JSON string (or an object), not {}", arguments_path, found(*value));
    }
    const std::string& text = value->get_ref<const std::string&>();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) return ordered_json::object();
    if (text.starts_with("\xEF\xBB\xBF")) {
        fail("{} is not valid JSON: it starts with a byte order mark", arguments_path);
    }
    ordered_json arguments = parse_json_like_python(text, arguments_path + " is not valid JSON");
    if (!arguments.is_object()) {
        fail("{} must be a JSON object (parameter names to values), not {}", arguments_path,
             found(arguments));
    }
    return arguments;
}

ChatToolCall parse_tool_call(const ordered_json& value, const std::string& path) {
    require_object(value, path);
    ChatToolCall call;
    call.id = optional_string(value, "id", path).value_or("");
    call.type = optional_string(value, "type", path).value_or("function");
    if (call.type != "function") {
        fail("{}.type {} is not supported (only \"function\")", path, json_quoted(call.type));
    }
    const std::string function_path = path + ".function";
    const ordered_json* function = member(value, "function");
    if (!function) fail("{} is missing", function_path);
    require_object(*function, function_path);
    call.name = required_string(*function, "name", function_path);
    if (call.name.empty()) fail("{}.name is empty", function_path);
    call.arguments = parse_arguments(*function, function_path);
    return call;
}

ChatRole parse_role(const ordered_json& message, const std::string& path) {
    const std::string role = required_string(message, "role", path);
    if (role == "system") return ChatRole::system;
    if (role == "user") return ChatRole::user;
    if (role == "assistant") return ChatRole::assistant;
    if (role == "tool") return ChatRole::tool;
    fail("{}.role {} is not supported (system, user, assistant or tool)", path, json_quoted(role));
}

ChatMessage parse_message(const ordered_json& value, const std::string& path) {
    require_object(value, path);
    ChatMessage message;
    message.role = parse_role(value, path);
    message.content = parse_content(value, path);
    // The first non-null of the names transformers accepts for a message's reasoning.
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
        std::optional<std::string> reasoning = optional_string(value, key, path);
        if (reasoning && !message.reasoning_content) message.reasoning_content = reasoning;
    }
    if (const ordered_json* calls = member(value, "tool_calls")) {
        if (!calls->is_array()) {
            fail("{}.tool_calls must be a list, not {}", path, found(*calls));
        }
        if (!calls->empty() && message.role != ChatRole::assistant) {
            fail("{}.tool_calls: only assistant messages have tool calls, this one is '{}'", path,
                 chat_role_name(message.role));
        }
        for (size_t i = 0; i < calls->size(); ++i) {
            message.tool_calls.push_back(
                parse_tool_call((*calls)[i], fmt::format("{}.tool_calls[{}]", path, i)));
        }
    }
    message.tool_call_id = optional_string(value, "tool_call_id", path);
    message.name = optional_string(value, "name", path);
    message.current_date = optional_string(value, "current_date", path);
    message.current_location = optional_string(value, "current_location", path);
    return message;
}

ordered_json parse_tool(const ordered_json& tool, const std::string& path) {
    require_object(tool, path);
    const std::string type = optional_string(tool, "type", path).value_or("function");
    if (type != "function")
        fail("{}.type {} is not supported (only \"function\")", path, json_quoted(type));
    const std::string function_path = path + ".function";
    const ordered_json* function = member(tool, "function");
    if (!function)
        fail("{} is missing (tools are {{\"type\": \"function\", \"function\": {{...}}}})",
             function_path);
    require_object(*function, function_path);
    if (required_string(*function, "name", function_path).empty()) {
        fail("{}.name is empty", function_path);
    }
    optional_string(*function, "description", function_path);
    if (const ordered_json* parameters = member(*function, "parameters")) {
        require_object(*parameters, function_path + ".parameters");
    }
    return tool;
}

std::optional<bool> optional_bool(const ordered_json& object, const char* key) {
    const ordered_json* value = member(object, key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) fail("{} must be true or false, not {}", key, found(*value));
    return value->get<bool>();
}

}  // namespace

const char* chat_role_name(ChatRole role) {
    switch (role) {
        case ChatRole::system:
            return "system";
        case ChatRole::user:
            return "user";
        case ChatRole::assistant:
            return "assistant";
        case ChatRole::tool:
            return "tool";
    }
    return "?";
}

std::string ChatContent::visible_text() const {
    if (!is_list) return text;
    std::string joined;
    for (const std::string& part : parts) joined += part;
    return joined;
}

ChatRequest parse_chat_request(const ordered_json& body) {
    if (!body.is_object()) fail("the request body must be a JSON object, not {}", found(body));
    ChatRequest request;

    const ordered_json* messages = member(body, "messages");
    if (!messages) fail("messages is missing");
    if (!messages->is_array()) fail("messages must be a list, not {}", found(*messages));
    if (messages->empty()) fail("messages is empty");
    for (size_t i = 0; i < messages->size(); ++i) {
        request.messages.push_back(parse_message((*messages)[i], fmt::format("messages[{}]", i)));
    }

    if (const ordered_json* tools = member(body, "tools")) {
        if (!tools->is_array()) fail("tools must be a list, not {}", found(*tools));
        for (size_t i = 0; i < tools->size(); ++i) {
            request.tools.push_back(parse_tool((*tools)[i], fmt::format("tools[{}]", i)));
        }
    }

    request.add_generation_prompt = optional_bool(body, "add_generation_prompt").value_or(true);
    if (optional_bool(body, "continue_final_message").value_or(false)) {
        fail("continue_final_message is not supported");
    }
    if (const ordered_json* chat_template = member(body, "chat_template")) {
        fail(
            "chat_template: a request cannot bring its own template; fourbit renders the "
            "MiniMax-M2 chat format (got {})",
            found(*chat_template));
    }
    if (const ordered_json* kwargs = member(body, "chat_template_kwargs")) {
        require_object(*kwargs, "chat_template_kwargs");
        for (const char* reserved : {"messages", "tools", "add_generation_prompt"}) {
            if (kwargs->contains(reserved)) {
                fail("chat_template_kwargs.{} is not allowed: it is a field of the request itself",
                     reserved);
            }
        }
        // The template reads model_identity and ignores anything else (enable_thinking included).
        request.model_identity = optional_string(*kwargs, "model_identity", "chat_template_kwargs");
    }
    return request;
}

ChatRequest parse_chat_request_text(std::string_view body_text) {
    return parse_chat_request(
        parse_json_like_python(body_text, "the request body is not valid JSON"));
}

}  // namespace fourbit
