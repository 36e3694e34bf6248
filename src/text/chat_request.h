// An OpenAI chat-completions request body, validated into plain structs: the messages, tools
// and template flags that the chat renderer needs. The server and `fourbit render` share it.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fourbit {

enum class ChatRole { system, user, assistant, tool };
const char* chat_role_name(ChatRole role);

// A message's content: a string, or a list of text parts ({"type": "text", "text": ...} or a
// bare string). null and a missing content are "" (vLLM does that before rendering).
struct ChatContent {
    bool is_list = false;
    std::string text;                // when !is_list
    std::vector<std::string> parts;  // when is_list

    // The text a template's visible_text() makes of it: the string, or the parts concatenated.
    std::string visible_text() const;
    // Python truthiness, which the template tests: a non-empty string or a non-empty list
    // (even of empty parts).
    bool is_truthy() const { return is_list ? !parts.empty() : !text.empty(); }
};

struct ChatToolCall {
    std::string id;  // "" when absent
    std::string type = "function";
    std::string name;  // function.name
    // function.arguments as a JSON object in the client's key order: OpenAI sends a JSON string,
    // parsed here as vLLM does ("", null or no arguments: {}); numbers keep Python's reading.
    nlohmann::ordered_json arguments = nlohmann::ordered_json::object();
};

struct ChatMessage {
    ChatRole role = ChatRole::user;
    ChatContent content;
    // reasoning_content, else `thinking`, else `reasoning` (the names transformers accepts).
    std::optional<std::string> reasoning_content;
    std::vector<ChatToolCall> tool_calls;  // assistant only
    std::optional<std::string> tool_call_id;
    std::optional<std::string> name;
    // Read by the template from a leading system message only.
    std::optional<std::string> current_date;
    std::optional<std::string> current_location;
};

struct ChatRequest {
    std::vector<ChatMessage> messages;
    // Each tool as sent ({"type": "function", "function": {...}}), key order kept.
    std::vector<nlohmann::ordered_json> tools;
    bool add_generation_prompt = true;
    // chat_template_kwargs.model_identity: replaces the template's default identity.
    std::optional<std::string> model_identity;
};

// Validates an OpenAI chat-completions request body. Throws Error naming the offending path,
// e.g. "messages[2].tool_calls[0].function.arguments is not valid JSON: ...". Fields the chat
// format does not use (model, sampling, stream, ...) are left to the caller.
// NOTE: take the body as ordered_json (parse it with parse_json_like_python): tool schemas are
// printed in the client's key order, which nlohmann::json (sorted keys) has already lost.
ChatRequest parse_chat_request(const nlohmann::ordered_json& body);
ChatRequest parse_chat_request(const nlohmann::json& body) = delete;
// The same from the body's JSON text.
ChatRequest parse_chat_request_text(std::string_view body_text);

}  // namespace fourbit
