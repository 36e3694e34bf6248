// Request bodies -> validated specs. Each field is read through one typed getter that names the
// field in its 400, so a wrong type anywhere gives the same kind of answer.
#include "server/request_schema.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "server/api_error.h"
#include "text/python_json.h"

namespace fourbit {

namespace {

using ordered_json = nlohmann::ordered_json;

// "a string", "a boolean", ...: what was found, for error messages.
std::string found(const ordered_json& value) {
    switch (value.type()) {
        case ordered_json::value_t::null:
            return "null";
        case ordered_json::value_t::boolean:
            return "a boolean";
        case ordered_json::value_t::string:
            return "a string";
        case ordered_json::value_t::array:
            return "an array";
        case ordered_json::value_t::object:
            return "an object";
        case ordered_json::value_t::binary:
            return "an integer out of range";
        default:
            return "a number";
    }
}

// The member, or nullptr when absent or null (OpenAI clients send null for "not set").
const ordered_json* member(const ordered_json& body, std::string_view key) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
}

std::optional<bool> get_bool(const ordered_json& body, std::string_view key) {
    const ordered_json* value = member(body, key);
    if (!value) return std::nullopt;
    if (!value->is_boolean())
        bad_request(std::string(key), "{} must be a boolean, not {}", key, found(*value));
    return value->get<bool>();
}

std::optional<double> get_number(const ordered_json& body, std::string_view key) {
    const ordered_json* value = member(body, key);
    if (!value) return std::nullopt;
    if (!value->is_number())
        bad_request(std::string(key), "{} must be a number, not {}", key, found(*value));
    const double number = value->get<double>();
    if (!std::isfinite(number)) bad_request(std::string(key), "{} must be finite", key);
    return number;
}

// An integer, or a number with an integral value (5.0), as pydantic reads int fields.
int64_t to_integer(const ordered_json& value, const std::string& name) {
    if (value.is_number_integer()) {
        if (value.is_number_unsigned() &&
            value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            bad_request(name, "{} is out of range", name);
        }
        return value.get<int64_t>();
    }
    if (value.is_number_float()) {
        const double number = value.get<double>();
        if (std::isfinite(number) && number == std::floor(number) && std::fabs(number) < 9e18) {
            return static_cast<int64_t>(number);
        }
    }
    if (value.is_binary()) bad_request(name, "{} is out of range", name);
    bad_request(name, "{} must be an integer, not {}", name, found(value));
}

std::optional<int64_t> get_integer(const ordered_json& body, std::string_view key) {
    const ordered_json* value = member(body, key);
    if (!value) return std::nullopt;
    return to_integer(*value, std::string(key));
}

std::optional<std::string> get_string(const ordered_json& body, std::string_view key) {
    const ordered_json* value = member(body, key);
    if (!value) return std::nullopt;
    if (!value->is_string())
        bad_request(std::string(key), "{} must be a string, not {}", key, found(*value));
    return value->get<std::string>();
}

void check_range(std::optional<int64_t> value, std::string_view key, int64_t low, int64_t high) {
    if (value && (*value < low || *value > high)) {
        bad_request(std::string(key), "{} must be between {} and {}, got {}", key, low, high,
                    *value);
    }
}

// A token id list: ints in [0, 2^31).
std::vector<int32_t> to_token_ids(const ordered_json& value, const std::string& name) {
    if (!value.is_array())
        bad_request(name, "{} must be an array of token ids, not {}", name, found(value));
    std::vector<int32_t> ids;
    ids.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
        const std::string item = fmt::format("{}[{}]", name, i);
        if (!value[i].is_number_integer())
            bad_request(name, "{} must be a token id, not {}", item, found(value[i]));
        const int64_t id = to_integer(value[i], item);
        if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
            bad_request(name, "{} = {} is not a valid token id", item, id);
        }
        ids.push_back(static_cast<int32_t>(id));
    }
    return ids;
}

// The part of a text/ error message that names the field: "messages[2].content is ..." ->
// "messages[2].content".
std::string param_of(std::string_view message) {
    const size_t end = message.find_first_of(" :");
    return std::string(message.substr(0, end));
}

// Known fields whose meaning the server cannot honour: a 400 rather than a silently different
// answer. Neutral values (penalty 0, an empty logit_bias, response_format text) are accepted.
void reject_unsupported(const ordered_json& body, bool chat) {
    if (const ordered_json* format = member(body, "response_format")) {
        if (!format->is_object())
            bad_request("response_format", "response_format must be an object, not {}",
                        found(*format));
        const std::optional<std::string> type = get_string(*format, "type");
        if (type && *type != "text") {
            bad_request("response_format",
                        "response_format type '{}' is not supported (no structured output): only "
                        "'text'",
                        *type);
        }
    }
    if (const ordered_json* bias = member(body, "logit_bias")) {
        if (!bias->is_object())
            bad_request("logit_bias", "logit_bias must be an object, not {}", found(*bias));
        if (!bias->empty()) bad_request("logit_bias", "logit_bias is not supported");
    }
    for (const char* key : {"presence_penalty", "frequency_penalty"}) {
        if (std::optional<double> value = get_number(body, key); value && *value != 0) {
            bad_request(key, "{} is not supported (only 0)", key);
        }
    }
    if (std::optional<double> value = get_number(body, "repetition_penalty");
        value && *value != 1) {
        bad_request("repetition_penalty", "repetition_penalty is not supported (only 1)");
    }
    if (std::optional<int64_t> value = get_integer(body, "min_tokens"); value && *value != 0) {
        bad_request("min_tokens", "min_tokens is not supported (only 0)");
    }
    if (std::optional<int64_t> value = get_integer(body, "best_of"); value && *value != 1) {
        bad_request("best_of", "best_of is not supported (only 1)");
    }
    if (get_bool(body, "use_beam_search").value_or(false)) {
        bad_request("use_beam_search", "beam search is not supported");
    }
    for (const char* key :
         {"prompt_logprobs", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
          "structured_outputs", "prediction", "audio", "thinking_token_budget"}) {
        if (member(body, key)) bad_request(key, "{} is not supported", key);
    }
    if (const ordered_json* modalities = member(body, "modalities")) {
        if (!modalities->is_array())
            bad_request("modalities", "modalities must be an array, not {}", found(*modalities));
        for (const ordered_json& modality : *modalities) {
            if (modality != "text")
                bad_request("modalities", "only the text modality is supported");
        }
    }
    if (chat) {
        for (const char* key : {"functions", "function_call"}) {
            if (member(body, key)) {
                bad_request(key, "{} is the deprecated form of tools and tool_choice: use those",
                            key);
            }
        }
    } else {
        if (get_bool(body, "echo").value_or(false)) bad_request("echo", "echo is not supported");
        if (std::optional<std::string> suffix = get_string(body, "suffix");
            suffix && !suffix->empty()) {
            bad_request("suffix", "suffix is not supported");
        }
    }
}

GenerationSpec parse_generation_fields(const ordered_json& body, const RequestLimits& limits,
                                       bool chat) {
    GenerationSpec spec;
    spec.model = resolve_model_name(body, limits);
    reject_unsupported(body, chat);

    spec.stream = get_bool(body, "stream").value_or(false);
    if (const ordered_json* options = member(body, "stream_options")) {
        if (!options->is_object())
            bad_request("stream_options", "stream_options must be an object, not {}",
                        found(*options));
        try {
            spec.include_usage = get_bool(*options, "include_usage").value_or(false);
            spec.continuous_usage_stats =
                get_bool(*options, "continuous_usage_stats").value_or(false);
        } catch (const ApiError& error) {
            throw ApiError(400, error.type, "stream_options." + std::string(error.what()),
                           "stream_options." + error.param);
        }
    }

    std::optional<int64_t> n = get_integer(body, "n");
    check_range(n, "n", 1, limits.max_n);
    spec.n = n.value_or(1);

    std::optional<int64_t> max_tokens = get_integer(body, "max_completion_tokens");
    const char* max_tokens_name = "max_completion_tokens";
    if (!max_tokens) {
        max_tokens = get_integer(body, "max_tokens");
        max_tokens_name = "max_tokens";
    }
    if (max_tokens && *max_tokens < 1) {
        bad_request(max_tokens_name, "{} must be at least 1, got {}", max_tokens_name, *max_tokens);
    }
    spec.max_tokens = max_tokens;

    SamplingOverrides& sampling = spec.sampling;
    sampling.temperature = get_number(body, "temperature");
    if (sampling.temperature && *sampling.temperature < 0) {
        bad_request("temperature", "temperature must be >= 0, got {}", *sampling.temperature);
    }
    sampling.top_p = get_number(body, "top_p");
    if (sampling.top_p && !(*sampling.top_p > 0 && *sampling.top_p <= 1)) {
        bad_request("top_p", "top_p must be in (0, 1], got {}", *sampling.top_p);
    }
    sampling.min_p = get_number(body, "min_p");
    if (sampling.min_p && !(*sampling.min_p >= 0 && *sampling.min_p <= 1)) {
        bad_request("min_p", "min_p must be in [0, 1], got {}", *sampling.min_p);
    }
    sampling.top_k = get_integer(body, "top_k");
    if (sampling.top_k && *sampling.top_k < -1) {
        bad_request("top_k", "top_k must be -1 (all), 0 (all) or positive, got {}",
                    *sampling.top_k);
    }
    // A negative seed is as good a seed as any: its bits are used.
    if (std::optional<int64_t> seed = get_integer(body, "seed")) {
        sampling.seed = static_cast<uint64_t>(*seed);
    }

    if (const ordered_json* stop = member(body, "stop")) {
        std::vector<std::string> strings;
        if (stop->is_string()) {
            strings.push_back(stop->get<std::string>());
        } else if (stop->is_array()) {
            for (size_t i = 0; i < stop->size(); ++i) {
                if (!(*stop)[i].is_string()) {
                    bad_request("stop", "stop[{}] must be a string, not {}", i, found((*stop)[i]));
                }
                strings.push_back((*stop)[i].get<std::string>());
            }
        } else {
            bad_request("stop", "stop must be a string or an array of strings, not {}",
                        found(*stop));
        }
        for (std::string& text : strings) {
            if (text.empty()) continue;  // matches nowhere useful; OpenAI ignores it too
            if (static_cast<int64_t>(text.size()) > limits.max_stop_string_bytes) {
                bad_request("stop", "a stop string may have at most {} bytes, this one has {}",
                            limits.max_stop_string_bytes, text.size());
            }
            spec.stop.push_back(std::move(text));
        }
        if (static_cast<int64_t>(spec.stop.size()) > limits.max_stop_strings) {
            bad_request("stop", "at most {} stop strings, got {}", limits.max_stop_strings,
                        spec.stop.size());
        }
    }
    spec.include_stop_str_in_output = get_bool(body, "include_stop_str_in_output").value_or(false);
    if (const ordered_json* ids = member(body, "stop_token_ids")) {
        for (int32_t id : to_token_ids(*ids, "stop_token_ids")) spec.stop_token_ids.push_back(id);
    }
    spec.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
    spec.return_token_ids = get_bool(body, "return_token_ids").value_or(false);
    spec.skip_special_tokens = get_bool(body, "skip_special_tokens").value_or(true);

    if (chat) {
        spec.logprobs = get_bool(body, "logprobs").value_or(false);
        std::optional<int64_t> top = get_integer(body, "top_logprobs");
        check_range(top, "top_logprobs", 0, limits.max_logprobs);
        if (top && *top > 0 && !spec.logprobs) {
            bad_request("top_logprobs", "top_logprobs needs logprobs set to true");
        }
        spec.top_logprobs = top.value_or(0);
    } else {
        // Completions: `logprobs` is the number of alternatives (0: only the chosen token's).
        std::optional<int64_t> top = get_integer(body, "logprobs");
        check_range(top, "logprobs", 0, limits.max_logprobs);
        spec.logprobs = top.has_value();
        spec.top_logprobs = top.value_or(0);
    }
    return spec;
}

// A tool's function name, as the parser and the template read it: {"type": "function",
// "function": {"name": ...}} or a bare {"name": ...}.
std::optional<std::string> tool_name(const ordered_json& tool) {
    if (!tool.is_object()) return std::nullopt;
    const ordered_json* function = member(tool, "function");
    const ordered_json& holder = function && function->is_object() ? *function : tool;
    const ordered_json* name = member(holder, "name");
    if (!name || !name->is_string()) return std::nullopt;
    return name->get<std::string>();
}

ToolChoice parse_tool_choice(const ordered_json& body, const std::vector<ordered_json>& tools) {
    ToolChoice choice;
    choice.kind = tools.empty() ? ToolChoiceKind::none : ToolChoiceKind::automatic;
    const ordered_json* value = member(body, "tool_choice");
    if (!value) return choice;
    if (value->is_string()) {
        const std::string mode = value->get<std::string>();
        if (mode == "none") {
            choice.kind = ToolChoiceKind::none;
        } else if (mode == "auto") {
            choice.kind = tools.empty() ? ToolChoiceKind::none : ToolChoiceKind::automatic;
        } else if (mode == "required") {
            choice.kind = ToolChoiceKind::required;
        } else {
            bad_request("tool_choice",
                        "tool_choice must be 'none', 'auto', 'required' or a named function, "
                        "not '{}'",
                        mode);
        }
    } else if (value->is_object()) {
        const std::optional<std::string> type = get_string(*value, "type");
        const ordered_json* function = member(*value, "function");
        if (type != "function" || !function || !function->is_object()) {
            bad_request("tool_choice",
                        "a named tool_choice is {{\"type\": \"function\", \"function\": "
                        "{{\"name\": ...}}}}");
        }
        const ordered_json* name = member(*function, "name");
        if (!name || !name->is_string()) {
            bad_request("tool_choice", "tool_choice.function.name must be a string");
        }
        choice.kind = ToolChoiceKind::named;
        choice.name = name->get<std::string>();
    } else {
        bad_request("tool_choice", "tool_choice must be a string or an object, not {}",
                    found(*value));
    }
    if ((choice.kind == ToolChoiceKind::required || choice.kind == ToolChoiceKind::named) &&
        tools.empty()) {
        bad_request("tool_choice", "tool_choice '{}' needs tools",
                    choice.kind == ToolChoiceKind::required ? "required" : choice.name);
    }
    if (choice.kind == ToolChoiceKind::named) {
        const bool listed = std::any_of(tools.begin(), tools.end(), [&](const ordered_json& tool) {
            return tool_name(tool) == choice.name;
        });
        if (!listed) {
            bad_request("tool_choice", "tool_choice names the function '{}', which is not in tools",
                        choice.name);
        }
        // The name goes into the prompt inside `<invoke name="...">`: it must not break the tag.
        if (choice.name.empty() || choice.name.find_first_of("\"<>\n") != std::string::npos) {
            bad_request(
                "tool_choice",
                "the function name '{}' cannot be forced (empty, or holds \" < > or a newline)",
                choice.name);
        }
    }
    return choice;
}

// How deep the text's arrays and objects nest (strings skipped), stopping past `limit`.
int64_t json_depth(std::string_view text, int64_t limit) {
    int64_t depth = 0, deepest = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

}  // namespace

std::string resolve_model_name(const ordered_json& body, const RequestLimits& limits) {
    const std::optional<std::string> model = get_string(body, "model");
    if (!model) return limits.served_model_names.empty() ? "" : limits.served_model_names.front();
    const auto& names = limits.served_model_names;
    if (std::find(names.begin(), names.end(), *model) == names.end()) {
        throw ApiError(404, "invalid_request_error",
                       fmt::format("The model `{}` does not exist.", *model), "model",
                       "model_not_found");
    }
    return *model;
}

ordered_json parse_request_body(std::string_view body, const RequestLimits& limits) {
    // NOTE: checked before parsing: a deeply nested body would otherwise reach recursive code
    // (copies, dumps, the destructor) and could overflow the stack.
    if (json_depth(body, limits.max_json_depth) > limits.max_json_depth) {
        bad_request("", "the request body nests deeper than {} levels", limits.max_json_depth);
    }
    ordered_json json;
    try {
        json = parse_json_like_python(body, "the request body");
    } catch (const Error& error) {
        bad_request("", "{}", error.what());
    }
    if (!json.is_object())
        bad_request("", "the request body must be a JSON object, not {}", found(json));
    return json;
}

ChatCompletionSpec parse_chat_completion_request(const ordered_json& body,
                                                 const RequestLimits& limits) {
    ChatCompletionSpec spec;
    spec.generation = parse_generation_fields(body, limits, /*chat=*/true);
    try {
        spec.chat = parse_chat_request(body);
    } catch (const ApiError&) {
        throw;
    } catch (const Error& error) {
        bad_request(param_of(error.what()), "{}", error.what());
    }
    spec.tool_choice = parse_tool_choice(body, spec.chat.tools);
    spec.parallel_tool_calls = get_bool(body, "parallel_tool_calls").value_or(true);
    const ToolChoiceKind kind = spec.tool_choice.kind;
    if (kind == ToolChoiceKind::automatic && !limits.enable_auto_tool_choice) {
        bad_request("tool_choice",
                    "\"auto\" tool choice requires the server to run with "
                    "--enable-auto-tool-choice; use tool_choice \"none\", \"required\" or a "
                    "named function");
    }
    if (kind != ToolChoiceKind::none && limits.tool_call_parser == ToolCallParser::none) {
        bad_request("tool_choice",
                    "tool calls need the server to run with --tool-call-parser minimax_m2");
    }
    if (!spec.chat.tools.empty()) {
        spec.tool_schemas = nlohmann::json::array();
        for (const ordered_json& tool : spec.chat.tools) {
            // The parser's schema lookups need no key order.
            spec.tool_schemas.push_back(nlohmann::json::parse(python_json_dumps(tool)));
        }
    }
    return spec;
}

CompletionSpec parse_completion_request(const ordered_json& body, const RequestLimits& limits) {
    CompletionSpec spec;
    spec.generation = parse_generation_fields(body, limits, /*chat=*/false);
    const ordered_json* prompt = member(body, "prompt");
    if (!prompt) bad_request("prompt", "prompt is missing");
    auto text_prompt = [](const ordered_json& value) {
        CompletionPrompt p;
        p.text = value.get<std::string>();
        return p;
    };
    if (prompt->is_string()) {
        spec.prompts.push_back(text_prompt(*prompt));
    } else if (prompt->is_array() && !prompt->empty()) {
        const ordered_json& first = prompt->front();
        if (first.is_number()) {
            spec.prompts.push_back({std::nullopt, to_token_ids(*prompt, "prompt")});
        } else {
            for (size_t i = 0; i < prompt->size(); ++i) {
                const ordered_json& item = (*prompt)[i];
                if (item.is_string()) {
                    spec.prompts.push_back(text_prompt(item));
                } else if (item.is_array()) {
                    spec.prompts.push_back(
                        {std::nullopt, to_token_ids(item, fmt::format("prompt[{}]", i))});
                } else {
                    bad_request("prompt",
                                "prompt[{}] must be a string or an array of token ids, not {}", i,
                                found(item));
                }
            }
        }
    } else {
        bad_request("prompt",
                    "prompt must be a string, an array of strings, an array of token ids or an "
                    "array of those, not {}",
                    prompt->is_array() ? "an empty array" : found(*prompt));
    }
    const int64_t choices = static_cast<int64_t>(spec.prompts.size()) * spec.generation.n;
    if (choices > limits.max_n) {
        bad_request("prompt", "{} prompts x n = {} choices, more than the {} allowed",
                    spec.prompts.size(), choices, limits.max_n);
    }
    return spec;
}

TokenizeSpec parse_tokenize_request(const ordered_json& body, const RequestLimits& limits) {
    resolve_model_name(body, limits);
    TokenizeSpec spec;
    spec.return_token_strs = get_bool(body, "return_token_strs").value_or(false);
    if (member(body, "messages")) {
        try {
            spec.chat = parse_chat_request(body);
        } catch (const ApiError&) {
            throw;
        } catch (const Error& error) {
            bad_request(param_of(error.what()), "{}", error.what());
        }
    } else {
        spec.prompt = get_string(body, "prompt");
        if (!spec.prompt) bad_request("prompt", "the body needs a prompt string or messages");
    }
    return spec;
}

DetokenizeSpec parse_detokenize_request(const ordered_json& body, const RequestLimits& limits) {
    resolve_model_name(body, limits);
    const ordered_json* tokens = member(body, "tokens");
    if (!tokens) bad_request("tokens", "tokens is missing");
    return {to_token_ids(*tokens, "tokens")};
}

}  // namespace fourbit
