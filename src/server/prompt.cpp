#include "server/prompt.h"

#include "server/api_error.h"

namespace fourbit {

namespace {

constexpr std::string_view kThinkOpen = "<think>\n";

}  // namespace

std::string forced_tool_call_text(const ToolChoice& choice, bool prompt_opens_think) {
    if (choice.kind != ToolChoiceKind::named && choice.kind != ToolChoiceKind::required) return "";
    std::string text = prompt_opens_think ? "</think>\n\n" : "";
    text += "<minimax:tool_call>\n<invoke name=\"";
    if (choice.kind == ToolChoiceKind::named) text += choice.name + "\">\n";
    return text;
}

ChatPrompt build_chat_prompt(const ChatCompletionSpec& spec, const ChatTemplate& chat_template,
                             const Tokenizer& tokenizer) {
    ChatPrompt prompt;
    try {
        prompt.text = chat_template.render(spec.chat);
    } catch (const Error& error) {
        // The template raises on conversations it cannot express (a tool result with no call).
        const std::string message = error.what();
        bad_request(message.starts_with("messages") ? message.substr(0, message.find_first_of(" :"))
                                                    : "messages",
                    "{}", message);
    }
    prompt.opens_think = prompt.text.ends_with(kThinkOpen);
    prompt.forced_output = forced_tool_call_text(spec.tool_choice, prompt.opens_think);
    prompt.text += prompt.forced_output;
    prompt.token_ids = tokenizer.encode(prompt.text);
    return prompt;
}

int64_t resolve_max_tokens(std::optional<int64_t> requested, int64_t prompt_tokens,
                           int64_t max_model_len) {
    const char* param = requested ? "max_tokens" : "messages";
    if (prompt_tokens >= max_model_len) {
        bad_request(param,
                    "This model's maximum context length is {} tokens. However, your prompt has "
                    "{} tokens, which leaves no room for the completion. Please shorten the "
                    "prompt.",
                    max_model_len, prompt_tokens);
    }
    if (!requested) return max_model_len - prompt_tokens;
    if (prompt_tokens + *requested > max_model_len) {
        bad_request(param,
                    "This model's maximum context length is {} tokens. However, you requested {} "
                    "tokens ({} in the prompt, {} in the completion). Please reduce the length of "
                    "the prompt or of max_tokens.",
                    max_model_len, prompt_tokens + *requested, prompt_tokens, *requested);
    }
    return *requested;
}

void check_prompt_token_ids(const std::vector<int32_t>& ids, int64_t vocab_size,
                            const std::string& name) {
    if (ids.empty()) bad_request(name, "{} has no tokens", name);
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= vocab_size) {
            bad_request(name, "{}[{}] = {} is outside the vocabulary [0, {})", name, i, ids[i],
                        vocab_size);
        }
    }
}

GenerationRequest make_generation_request(const GenerationSpec& spec,
                                          const std::vector<int32_t>& prompt_ids,
                                          int64_t max_tokens, const SamplingParams& defaults,
                                          const std::vector<int64_t>& eos_token_ids,
                                          int64_t choice_index) {
    GenerationRequest request;
    request.prompt_ids = prompt_ids;
    request.max_tokens = max_tokens;
    SamplingParams& sampling = request.sampling;
    sampling = defaults;
    const SamplingOverrides& o = spec.sampling;
    if (o.temperature) sampling.temperature = *o.temperature;
    if (o.top_p) sampling.top_p = *o.top_p;
    if (o.top_k) sampling.top_k = *o.top_k;
    if (o.min_p) sampling.min_p = *o.min_p;
    sampling.seed.reset();
    if (o.seed) sampling.seed = *o.seed + static_cast<uint64_t>(choice_index);
    try {
        sampling.validate();
    } catch (const Error& error) {
        bad_request("", "{}", error.what());
    }
    request.stop_token_ids = eos_token_ids;
    request.stop_token_ids.insert(request.stop_token_ids.end(), spec.stop_token_ids.begin(),
                                  spec.stop_token_ids.end());
    request.ignore_eos = spec.ignore_eos;
    request.logprobs = spec.logprobs;
    request.top_logprobs = static_cast<int>(spec.top_logprobs);
    return request;
}

}  // namespace fourbit
