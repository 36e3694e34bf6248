#include "server/choice_output.h"

#include <algorithm>

namespace fourbit {

void merge_delta(MessageDelta& into, MessageDelta next) {
    into.reasoning_content += next.reasoning_content;
    into.content += next.content;
    for (ToolCallDelta& call : next.tool_calls) {
        auto same = std::find_if(into.tool_calls.begin(), into.tool_calls.end(),
                                 [&](const ToolCallDelta& c) { return c.index == call.index; });
        if (same == into.tool_calls.end()) {
            into.tool_calls.push_back(std::move(call));
            continue;
        }
        if (!same->id) same->id = std::move(call.id);
        if (!same->name) same->name = std::move(call.name);
        same->arguments += call.arguments;
    }
}

ChoiceOutput::ChoiceOutput(const Tokenizer& tokenizer, ChoiceOutputOptions options)
    : options_(std::move(options)),
      tokenizer_(tokenizer),
      detokenizer_(tokenizer, options_.skip_special_tokens),
      stop_(options_.stop, options_.include_stop_str_in_output),
      parser_(options_.parser) {
    if (options_.parse && !options_.forced_output.empty()) {
        pending_ = parse(options_.forced_output);
    }
}

MessageDelta ChoiceOutput::parse(std::string_view text) {
    MessageDelta delta;
    if (!options_.parse) {
        delta.content = std::string(text);
        return delta;
    }
    if (!text.empty()) delta = parser_.push(text);
    if (!options_.parallel_tool_calls) {
        std::erase_if(delta.tool_calls, [](const ToolCallDelta& call) { return call.index > 0; });
    }
    return delta;
}

MessageDelta ChoiceOutput::push_token(int32_t token_id) {
    ++n_tokens_;
    MessageDelta delta = std::move(pending_);
    pending_ = {};
    if (stop_.matched() || finished_) return delta;
    // A model whose vocabulary is padded past its tokenizer's (the small preset's 8192 rows
    // over a 5.4K-token tokenizer; real checkpoints pad too) can sample an id with no token:
    // it adds no text, as HF tokenizers and vLLM decode it, and still counts as a token.
    const std::string text = tokenizer_.contains(token_id) ? detokenizer_.push(token_id) : "";
    StopStringMatcher::Result kept = stop_.push(text);
    text_ += kept.text;
    merge_delta(delta, parse(kept.text));
    return delta;
}

MessageDelta ChoiceOutput::finish() {
    MessageDelta delta = std::move(pending_);
    pending_ = {};
    if (finished_) return delta;
    finished_ = true;
    std::string rest;
    if (!stop_.matched()) {
        rest = stop_.push(detokenizer_.flush()).text;
        rest += stop_.flush();
    }
    text_ += rest;
    merge_delta(delta, parse(rest));
    if (options_.parse) {
        MessageDelta last = parser_.finish();
        if (!options_.parallel_tool_calls) {
            std::erase_if(last.tool_calls,
                          [](const ToolCallDelta& call) { return call.index > 0; });
        }
        merge_delta(delta, std::move(last));
    }
    return delta;
}

ParsedMessage ChoiceOutput::message() const {
    if (!options_.parse) {
        ParsedMessage message;
        message.content = text_;
        return message;
    }
    ParsedMessage message = parse_message(options_.forced_output + text_, options_.parser);
    if (!options_.parallel_tool_calls && message.tool_calls.size() > 1) {
        message.tool_calls.resize(1);
    }
    return message;
}

std::string ChoiceOutput::finish_reason(std::string_view engine_reason) const {
    if (stop_.matched()) return "stop";
    if (engine_reason == "length") return "length";
    if (engine_reason == "cancelled") return "abort";
    if (engine_reason == "error") return "error";
    if (options_.parse) {
        const ParsedMessage parsed = message();
        if (!parsed.tool_calls.empty() && !parsed.truncated_tool_call) return "tool_calls";
    }
    return "stop";
}

}  // namespace fourbit
