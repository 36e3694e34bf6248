// The MiniMax-M2 chat format: a built-in C++ rendering of the official Jinja template
// (models/templates/minimax_m2_chat_template.jinja), byte-identical with it as transformers
// renders it after vLLM's request preprocessing. No Jinja engine: a checkpoint's own template
// is read only for its default identity, the one line that differs between M2, M2.1, M2.5
// and M2.7.
#pragma once

#include <string>
#include <string_view>

#include "text/chat_request.h"

namespace fourbit {

class ChatTemplate {
public:
    // The chat template of a checkpoint directory: `chat_template.jinja`, else the
    // `chat_template` of tokenizer_config.json (a string, or a list of named templates of which
    // "default" is used), else the built-in one. Throws Error when the directory is missing or
    // its template is not recognisably the MiniMax-M2 one.
    static ChatTemplate load_from_model_dir(const std::string& dir);
    // The shipped template, compiled into the binary.
    static ChatTemplate builtin();
    // From a template's text; `source` names it in errors.
    static ChatTemplate from_template_text(std::string_view text, const std::string& source);

    // The prompt for `request`, with the generation prompt ("]~b]ai\n<think>\n") when
    // request.add_generation_prompt is set, or when `add_generation_prompt` says so.
    // Throws Error (naming the message index) where the template raises: a tool message with no
    // assistant tool call before it.
    // NOTE: as in the template, only a leading system message is rendered; a system message
    // anywhere else is dropped.
    std::string render(const ChatRequest& request) const;
    std::string render(const ChatRequest& request, bool add_generation_prompt) const;

    // The system text used when the conversation has no (non-empty) system message.
    const std::string& identity() const { return identity_; }
    // Where the template came from: a file path, "<path>:chat_template", or "built-in".
    const std::string& source() const { return source_; }
    // False when the template differs from the shipped one beyond its identity: the built-in
    // renderer may then not reproduce it byte for byte (load_from_model_dir warns).
    bool matches_builtin() const { return matches_builtin_; }

private:
    std::string identity_;
    std::string source_;
    bool matches_builtin_ = true;
};

// The shipped template's text (models/templates/minimax_m2_chat_template.jinja, compiled in):
// what make-model writes into a checkpoint as chat_template.jinja.
std::string_view builtin_chat_template_text();

// What a MiniMax-M2 template's text says about itself.
struct ChatTemplateIdentity {
    std::string identity;      // the default `model_identity`, its string literal decoded
    size_t literal_begin = 0;  // the literal's span in the template text, quotes included
    size_t literal_end = 0;
};

// Finds the default identity a MiniMax-M2 template sets (`{%- set model_identity = "..." -%}`,
// the one under `if model_identity is not defined` when there is one) and decodes the Jinja
// string literal as Jinja does. Throws Error naming `source` when the text is not recognisably
// the MiniMax-M2 template (a marker of its format is missing) or sets no literal identity.
ChatTemplateIdentity find_chat_template_identity(std::string_view text, const std::string& source);

}  // namespace fourbit
