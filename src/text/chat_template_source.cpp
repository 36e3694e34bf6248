// Where the chat template comes from: a checkpoint's chat_template.jinja or tokenizer_config.json,
// or the shipped copy compiled in. Only the template's default identity is read from it; the
// rest must be recognisably the MiniMax-M2 format, which chat_template.cpp renders.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "text/chat_template.h"
#include "text/utf8.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

namespace assets {  // compiled in by fourbit_embed_file (src/text/chat.cmake)
extern const char minimax_m2_chat_template[];
extern const unsigned long minimax_m2_chat_template_size;
}  // namespace assets

namespace {

namespace fs = std::filesystem;

// Pieces of the output format the renderer reproduces; a template without any of them is some
// other model's. (model_identity is where the default identity lives.)
constexpr const char* kFormatMarkers[] = {
    "]~!b[",
    "]~b]system",
    "]~b]user",
    "]~b]ai",
    "]~b]tool",
    "[e~[",
    "<minimax:tool_call>",
    "<invoke name=",
    "<parameter name=",
    "<response>",
    "<think>",
    "</think>",
    "model_identity",
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_identifier_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
size_t skip_spaces(std::string_view text, size_t at) {
    while (at < text.size() && is_space(text[at])) ++at;
    return at;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The body of a Jinja string literal as Jinja's lexer decodes it: newlines normalised, then
// Python's "unicode-escape" codec applied to the text with non-ASCII characters
// backslash-escaped first (so they come back unchanged, except right after a backslash).
std::string decode_jinja_string(std::string_view body, const std::string& source) {
    std::string text;
    for (size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\r') {
            text.push_back('\n');
            if (i + 1 < body.size() && body[i + 1] == '\n') ++i;
        } else {
            text.push_back(body[i]);
        }
    }
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\' || i + 1 == text.size()) {
            out.push_back(text[i]);
            continue;
        }
        const char c = text[++i];
        auto read_hex = [&](int n_digits) {
            uint32_t code_point = 0;
            for (int k = 0; k < n_digits; ++k) {
                const int digit = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
                if (digit < 0) {
                    fail("{}: truncated \\{} escape in the model_identity literal", source, c);
                }
                code_point = code_point * 16 + digit;
                ++i;
            }
            if (code_point > 0x10ffff || (code_point >= 0xd800 && code_point <= 0xdfff)) {
                fail("{}: the model_identity literal escapes U+{:X}, which is not a character",
                     source, code_point);
            }
            utf8::append(out, code_point);
        };
        switch (c) {
            case '\n':
                break;  // line continuation
            case '\\':
                out.push_back('\\');
                break;
            case '\'':
                out.push_back('\'');
                break;
            case '"':
                out.push_back('"');
                break;
            case 'a':
                out.push_back('\a');
                break;
            case 'b':
                out.push_back('\b');
                break;
            case 'f':
                out.push_back('\f');
                break;
            case 'n':
                out.push_back('\n');
                break;
            case 'r':
                out.push_back('\r');
                break;
            case 't':
                out.push_back('\t');
                break;
            case 'v':
                out.push_back('\v');
                break;
            case 'x':
                read_hex(2);
                break;
            case 'u':
                read_hex(4);
                break;
            case 'U':
                read_hex(8);
                break;
            case 'N':
                fail("{}: \\N{{...}} escapes in the model_identity literal are not supported",
                     source);
            default:
                if (c >= '0' && c <= '7') {
                    uint32_t code_point = c - '0';
                    for (int k = 0;
                         k < 2 && i + 1 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '7';
                         ++k) {
                        code_point = code_point * 8 + (text[++i] - '0');
                    }
                    utf8::append(out, code_point);
                } else if (static_cast<unsigned char>(c) >= 0x80) {
                    // Python escaped this character as \xHH, \uHHHH or \UHHHHHHHH before decoding,
                    // and the backslash in front escaped that escape's backslash.
                    size_t length = 1;
                    while (i + length < text.size() &&
                           (static_cast<unsigned char>(text[i + length]) & 0xc0) == 0x80) {
                        ++length;
                    }
                    const std::string_view character(text.data() + i, length);
                    if (!utf8::is_valid(character)) {
                        fail("{}: the model_identity literal is not valid UTF-8", source);
                    }
                    uint32_t code_point =
                        static_cast<unsigned char>(character[0]) & (length == 2   ? 0x1f
                                                                    : length == 3 ? 0x0f
                                                                                  : 0x07);
                    for (size_t k = 1; k < length; ++k) {
                        code_point = (code_point << 6) | (character[k] & 0x3f);
                    }
                    out.push_back('\\');
                    out += code_point < 0x100     ? fmt::format("x{:02x}", code_point)
                           : code_point < 0x10000 ? fmt::format("u{:04x}", code_point)
                                                  : fmt::format("U{:08x}", code_point);
                    i += length - 1;
                } else {
                    // Python keeps unknown escapes as they are.
                    out.push_back('\\');
                    out.push_back(c);
                }
        }
    }
    return out;
}

std::string read_text_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open {}: {}", path.string(), std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) fail("cannot read {}", path.string());
    return text.str();
}

// The template text of tokenizer_config.json, or "" when it has none.
std::string template_from_tokenizer_config(const fs::path& path, std::string* source) {
    nlohmann::json config;
    try {
        config = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& error) {
        fail("{} is not valid JSON: {}", path.string(), error.what());
    }
    if (!config.is_object()) fail("{}: not a JSON object", path.string());
    auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) return "";
    *source = path.string() + ":chat_template";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_array()) {
        // Named templates ({"name": ..., "template": ...}); transformers uses "default".
        std::string names;
        for (const nlohmann::json& entry : *it) {
            if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
                !entry.contains("template") || !entry["template"].is_string()) {
                fail(
                    "{}: chat_template lists an entry that is not {{\"name\": ..., \"template\": "
                    "...}}",
                    path.string());
            }
            const std::string name = entry["name"].get<std::string>();
            if (name == "default") {
                *source = path.string() + ":chat_template[default]";
                return entry["template"].get<std::string>();
            }
            names += (names.empty() ? "" : ", ") + name;
        }
        fail("{}: chat_template lists templates ({}) but none is named \"default\"", path.string(),
             names);
    }
    fail("{}: chat_template must be a string or a list of named templates", path.string());
}

// The template text with its identity literal cut out, for comparing templates.
std::string without_identity(std::string_view text, const ChatTemplateIdentity& found) {
    std::string out(text.substr(0, found.literal_begin));
    out += text.substr(found.literal_end);
    return out;
}

}  // namespace

std::string_view builtin_chat_template_text() {
    return {assets::minimax_m2_chat_template, assets::minimax_m2_chat_template_size};
}

ChatTemplateIdentity find_chat_template_identity(std::string_view text, const std::string& source) {
    for (const char* marker : kFormatMarkers) {
        if (text.find(marker) == std::string_view::npos) {
            fail(
                "{}: not the MiniMax-M2 chat template (it never mentions '{}'); fourbit renders "
                "only the MiniMax-M2 chat format",
                source, marker);
        }
    }
    // The default sits under `if model_identity is not defined` in the official templates;
    // some copies set it unconditionally at the top.
    size_t from = text.find("model_identity is not defined");
    if (from == std::string_view::npos) from = 0;
    for (size_t at = text.find("set", from); at != std::string_view::npos;
         at = text.find("set", at + 3)) {
        if (at > 0 && is_identifier_char(text[at - 1])) continue;
        size_t i = at + 3;
        if (i >= text.size() || !is_space(text[i])) continue;
        i = skip_spaces(text, i);
        constexpr std::string_view kName = "model_identity";
        if (text.substr(i, kName.size()) != kName) continue;
        i = skip_spaces(text, i + kName.size());
        if (i >= text.size() || text[i] != '=') continue;
        i = skip_spaces(text, i + 1);

        const char quote = i < text.size() ? text[i] : '\0';
        size_t end = i + 1;  // the closing quote
        while (quote == '"' || quote == '\'') {
            if (end >= text.size()) fail("{}: unterminated model_identity literal", source);
            if (text[end] == quote) break;
            end += text[end] == '\\' ? 2 : 1;
        }
        const std::string_view rest =
            text.substr(std::min(skip_spaces(text, end + 1), text.size()));
        if ((quote != '"' && quote != '\'') ||
            !(rest.starts_with("%}") || rest.starts_with("-%}"))) {
            fail(
                "{}: model_identity is set to an expression, not a string literal; fourbit "
                "reads only a literal default identity",
                source);
        }
        ChatTemplateIdentity found;
        found.identity = decode_jinja_string(text.substr(i + 1, end - i - 1), source);
        found.literal_begin = i;
        found.literal_end = end + 1;
        return found;
    }
    fail(
        "{}: the template sets no default model_identity (expected {{%- set model_identity = "
        "\"...\" -%}})",
        source);
}

ChatTemplate ChatTemplate::from_template_text(std::string_view text, const std::string& source) {
    static const ChatTemplateIdentity builtin_identity =
        find_chat_template_identity(builtin_chat_template_text(), "built-in");
    static const std::string builtin_rest =
        without_identity(builtin_chat_template_text(), builtin_identity);

    const ChatTemplateIdentity found = find_chat_template_identity(text, source);
    ChatTemplate result;
    result.identity_ = found.identity;
    result.source_ = source;
    result.matches_builtin_ = without_identity(text, found) == builtin_rest;
    return result;
}

ChatTemplate ChatTemplate::builtin() {
    static const ChatTemplate builtin =
        from_template_text(builtin_chat_template_text(), "built-in");
    return builtin;
}

ChatTemplate ChatTemplate::load_from_model_dir(const std::string& dir) {
    const fs::path root(dir);
    std::error_code error;
    if (!fs::is_directory(root, error)) fail("{}: not a directory", dir);

    std::string text;
    std::string source;
    const fs::path jinja_path = root / "chat_template.jinja";
    const fs::path config_path = root / "tokenizer_config.json";
    if (fs::exists(jinja_path, error)) {
        // transformers reads chat_template.jinja in preference to tokenizer_config.json.
        text = read_text_file(jinja_path);
        source = jinja_path.string();
    } else if (fs::exists(config_path, error)) {
        text = template_from_tokenizer_config(config_path, &source);
    }
    if (source.empty()) {
        spdlog::debug("{}: no chat template; using the built-in one", dir);
        return builtin();
    }
    ChatTemplate result = from_template_text(text, source);
    if (!result.matches_builtin()) {
        spdlog::warn(
            "{}: differs from fourbit's built-in MiniMax-M2 template beyond its identity; prompts "
            "follow the built-in format and may not match this template byte for byte",
            source);
    }
    return result;
}

}  // namespace fourbit
