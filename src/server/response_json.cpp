#include "server/response_json.h"

#include <random>

#include "text/utf8.h"

namespace fourbit {

namespace {

using ordered_json = nlohmann::ordered_json;

ordered_json bytes_json(std::string_view bytes) {
    ordered_json out = ordered_json::array();
    for (char c : bytes) out.push_back(static_cast<uint8_t>(c));
    return out;
}

ordered_json choices_json(const std::vector<ChoiceJson>& choices, const char* body_key) {
    ordered_json out = ordered_json::array();
    for (const ChoiceJson& choice : choices) {
        ordered_json item;
        item["index"] = choice.index;
        item[body_key] = choice.body;
        item["logprobs"] = choice.logprobs;
        item["finish_reason"] =
            choice.finish_reason ? ordered_json(*choice.finish_reason) : ordered_json(nullptr);
        item["token_ids"] = choice.token_ids;
        out.push_back(std::move(item));
    }
    return out;
}

ordered_json object_json(const ResponseHeader& header, const char* object) {
    return {{"id", header.id},
            {"object", object},
            {"created", header.created},
            {"model", header.model}};
}

}  // namespace

std::string make_response_id(std::string_view prefix) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{}{:016x}{:016x}", prefix, rng(), rng());
}

ordered_json usage_json(const Usage& usage) {
    return {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

std::string token_text(const Tokenizer& tokenizer, int32_t token_id) {
    std::string text;
    if (tokenizer.contains(token_id)) utf8::append_lossy(text, tokenizer.token_bytes(token_id));
    return text;
}

ordered_json chat_logprobs_json(const Tokenizer& tokenizer, std::span<const TokenLogprob> tokens) {
    ordered_json content = ordered_json::array();
    for (const TokenLogprob& token : tokens) {
        ordered_json top = ordered_json::array();
        for (const auto& [id, logprob] : token.top) {
            top.push_back(
                {{"token", token_text(tokenizer, id)},
                 {"logprob", logprob},
                 {"bytes", bytes_json(tokenizer.contains(id) ? tokenizer.token_bytes(id) : "")}});
        }
        content.push_back({{"token", token_text(tokenizer, token.token_id)},
                           {"logprob", token.logprob},
                           {"bytes", bytes_json(tokenizer.contains(token.token_id)
                                                    ? tokenizer.token_bytes(token.token_id)
                                                    : "")},
                           {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}};
}

ordered_json completion_logprobs_json(const Tokenizer& tokenizer,
                                      std::span<const TokenLogprob> tokens,
                                      std::span<const int64_t> text_offsets) {
    ordered_json texts = ordered_json::array(), logprobs = ordered_json::array(),
                 tops = ordered_json::array(), offsets = ordered_json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
        const TokenLogprob& token = tokens[i];
        texts.push_back(token_text(tokenizer, token.token_id));
        logprobs.push_back(token.logprob);
        ordered_json top = ordered_json::object();
        for (const auto& [id, logprob] : token.top) {
            const std::string text = token_text(tokenizer, id);
            if (!top.contains(text)) top[text] = logprob;  // most likely first: keep the first
        }
        tops.push_back(token.top.empty() ? ordered_json(nullptr) : std::move(top));
        offsets.push_back(i < text_offsets.size() ? text_offsets[i] : 0);
    }
    return {{"tokens", std::move(texts)},
            {"token_logprobs", std::move(logprobs)},
            {"top_logprobs", std::move(tops)},
            {"text_offset", std::move(offsets)}};
}

ordered_json chat_delta_json(const MessageDelta& delta, bool with_role) {
    ordered_json out = ordered_json::object();
    if (with_role) out["role"] = "assistant";
    if (!delta.reasoning_content.empty()) {
        out["reasoning_content"] = delta.reasoning_content;
        out["reasoning"] = delta.reasoning_content;
    }
    if (!delta.content.empty()) out["content"] = delta.content;
    if (with_role && delta.content.empty()) out["content"] = "";
    if (!delta.tool_calls.empty()) {
        ordered_json calls = ordered_json::array();
        for (const ToolCallDelta& call : delta.tool_calls) {
            ordered_json item = {{"index", call.index}};
            if (call.id) {
                item["id"] = *call.id;
                item["type"] = "function";
            }
            ordered_json function = ordered_json::object();
            if (call.name) function["name"] = *call.name;
            function["arguments"] = call.arguments;
            item["function"] = std::move(function);
            calls.push_back(std::move(item));
        }
        out["tool_calls"] = std::move(calls);
    }
    return out;
}

ordered_json chat_message_json(const ParsedMessage& message) {
    ordered_json out = {{"role", "assistant"},
                        {"content", message.content ? ordered_json(*message.content) : nullptr}};
    const ordered_json reasoning =
        message.reasoning_content ? ordered_json(*message.reasoning_content) : nullptr;
    out["reasoning_content"] = reasoning;
    out["reasoning"] = reasoning;
    ordered_json calls = ordered_json::array();
    for (const ToolCall& call : message.tool_calls) {
        calls.push_back({{"id", call.id},
                         {"type", "function"},
                         {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    out["tool_calls"] = std::move(calls);
    return out;
}

ordered_json chat_chunk_json(const ResponseHeader& header, const std::vector<ChoiceJson>& choices,
                             const std::optional<ordered_json>& usage) {
    ordered_json out = object_json(header, "chat.completion.chunk");
    out["choices"] = choices_json(choices, "delta");
    if (usage) out["usage"] = *usage;
    return out;
}

ordered_json completion_chunk_json(const ResponseHeader& header,
                                   const std::vector<ChoiceJson>& choices,
                                   const std::optional<ordered_json>& usage) {
    ordered_json out = object_json(header, "text_completion");
    out["choices"] = choices_json(choices, "text");
    if (usage) out["usage"] = *usage;
    return out;
}

ordered_json chat_completion_json(const ResponseHeader& header,
                                  const std::vector<ChoiceJson>& choices, const Usage& usage,
                                  const std::optional<std::vector<int32_t>>& prompt_token_ids) {
    ordered_json out = object_json(header, "chat.completion");
    out["choices"] = choices_json(choices, "message");
    out["usage"] = usage_json(usage);
    if (prompt_token_ids) out["prompt_token_ids"] = *prompt_token_ids;
    return out;
}

ordered_json completion_json(const ResponseHeader& header, const std::vector<ChoiceJson>& choices,
                             const Usage& usage) {
    ordered_json out = object_json(header, "text_completion");
    out["choices"] = choices_json(choices, "text");
    out["usage"] = usage_json(usage);
    return out;
}

ordered_json error_json(const ApiError& error) {
    auto or_null = [](const std::string& s) {
        return s.empty() ? ordered_json(nullptr) : ordered_json(s);
    };
    return {{"error",
             {{"message", error.what()},
              {"type", error.type},
              {"param", or_null(error.param)},
              {"code", or_null(error.code)}}}};
}

std::string dump_json(const ordered_json& json) {
    return json.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::string sse_event(const ordered_json& json) { return "data: " + dump_json(json) + "\n\n"; }

}  // namespace fourbit
