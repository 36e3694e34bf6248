// Pattern matching with PCRE2: wildcards are translated to regexes as Python's fnmatch does, and
// `re:` regexes are compiled anchored at the start, which is what re.match means.
#include "formats/module_pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cctype>
#include <new>

#include "util/error.h"

namespace fourbit {

struct ModulePattern::Compiled {
    pcre2_code* code = nullptr;
    ~Compiled() { pcre2_code_free(code); }
};

namespace {

constexpr std::string_view kRegexPrefix = "re:";

bool is_regex_meta(char c) {
    return std::string_view(".^$*+?{}[]\\|()").find(c) != std::string_view::npos;
}

bool is_wildcard_meta(char c) { return c == '*' || c == '?' || c == '['; }

std::string escape_regex(std::string_view literal) {
    std::string out;
    for (char c : literal) {
        if (is_regex_meta(c)) out += '\\';
        out += c;
    }
    return out;
}

// fnmatch's translation (Python's fnmatch.translate, without its (?s:...)\Z wrapper): `*`, `?`,
// bracket sets with `!` for negation; an unclosed `[` is a literal. Returns the regex body and,
// through `ends_with_star`, whether the last token was `*` (pattern_as_regex drops it).
std::string translate_wildcard(std::string_view glob, bool* ends_with_star) {
    std::string out;
    bool last_star = false;
    for (size_t i = 0; i < glob.size();) {
        const char c = glob[i++];
        last_star = false;
        if (c == '*') {
            out += ".*";
            last_star = true;
        } else if (c == '?') {
            out += '.';
        } else if (c == '[') {
            size_t j = i;
            if (j < glob.size() && glob[j] == '!') ++j;
            if (j < glob.size() && glob[j] == ']') ++j;
            while (j < glob.size() && glob[j] != ']') ++j;
            if (j >= glob.size()) {
                out += "\\[";
                continue;
            }
            std::string set(glob.substr(i, j - i));
            i = j + 1;
            std::string body;
            for (size_t k = 0; k < set.size(); ++k) {
                if (k == 0 && set[k] == '!') {
                    body += '^';
                } else if (k == 0 && set[k] == '^') {
                    body += "\\^";
                } else if (set[k] == '\\') {
                    body += "\\\\";
                } else {
                    body += set[k];
                }
            }
            out += '[' + body + ']';
        } else {
            out += escape_regex(std::string_view(&c, 1));
        }
    }
    if (ends_with_star) *ends_with_star = last_star;
    return out;
}

pcre2_code* compile(const std::string& regex, uint32_t options, const std::string& text,
                    std::string_view source) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                     options, &error_code, &error_offset, nullptr);
    if (code == nullptr) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error_code, message, sizeof(message));
        fail("{}: pattern '{}' is not a valid regular expression: {} at offset {}", source, text,
             reinterpret_cast<const char*>(message), error_offset);
    }
    return code;
}

}  // namespace

ModulePattern ModulePattern::parse(const std::string& text, std::string_view source) {
    ModulePattern pattern;
    pattern.text_ = text;
    auto compiled = std::make_shared<Compiled>();
    if (text.starts_with(kRegexPrefix)) {
        pattern.kind_ = Kind::regex;
        // re.match: anchored at the start, free at the end.
        compiled->code = compile(text.substr(kRegexPrefix.size()), PCRE2_ANCHORED, text, source);
    } else if (text.find_first_of("*?[") != std::string::npos) {
        pattern.kind_ = Kind::wildcard;
        // fnmatch: the whole name; `*` crosses dots.
        compiled->code = compile(translate_wildcard(text, nullptr) + "\\z",
                                 PCRE2_ANCHORED | PCRE2_DOTALL, text, source);
    } else {
        pattern.kind_ = Kind::exact;
        return pattern;
    }
    pattern.compiled_ = std::move(compiled);
    return pattern;
}

bool ModulePattern::matches(std::string_view module) const {
    if (kind_ == Kind::exact) return module == text_;
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
    if (data == nullptr) throw std::bad_alloc();
    const int result = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(module.data()),
                                   module.size(), 0, 0, data, nullptr);
    pcre2_match_data_free(data);
    // Anything but a match or a clean no-match (a resource limit) is a pattern we cannot
    // evaluate; say so rather than guess.
    if (result < 0 && result != PCRE2_ERROR_NOMATCH) {
        fail("pattern '{}' could not be evaluated on '{}' (PCRE2 error {})", text_, module, result);
    }
    return result >= 0;
}

const ModulePattern* first_match(const std::vector<ModulePattern>& patterns,
                                 std::string_view module) {
    for (const ModulePattern& pattern : patterns) {
        if (pattern.matches(module)) return &pattern;
    }
    return nullptr;
}

std::string pattern_as_regex(const ModulePattern& pattern) {
    switch (pattern.kind()) {
        case ModulePattern::Kind::regex:
        case ModulePattern::Kind::exact:
            return pattern.text();
        case ModulePattern::Kind::wildcard: {
            bool ends_with_star = false;
            std::string body = translate_wildcard(pattern.text(), &ends_with_star);
            // re.match is already a prefix match: a final `.*` adds nothing.
            if (ends_with_star) return std::string(kRegexPrefix) + body.substr(0, body.size() - 2);
            return std::string(kRegexPrefix) + body + "$";
        }
    }
    return pattern.text();
}

std::optional<std::string> pattern_as_wildcard(const ModulePattern& pattern) {
    if (pattern.kind() != ModulePattern::Kind::regex) return pattern.text();
    std::string_view body = std::string_view(pattern.text()).substr(kRegexPrefix.size());
    if (body.starts_with('^')) body.remove_prefix(1);
    std::string glob;
    bool anchored_end = false;
    for (size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        const bool last = i + 1 == body.size();
        if (c == '.' && i + 1 < body.size() && body[i + 1] == '*') {
            glob += '*';
            ++i;
        } else if (c == '.') {
            glob += '?';
        } else if (c == '$' && last) {
            anchored_end = true;
        } else if (c == '\\' && i + 1 < body.size()) {
            const char next = body[++i];
            if ((next == 'Z' || next == 'z') && i + 1 == body.size()) {
                anchored_end = true;
            } else if (std::isalnum(static_cast<unsigned char>(next)) || is_wildcard_meta(next)) {
                return std::nullopt;  // a class (\d, \w) or a literal fnmatch cannot spell
            } else {
                glob += next;
            }
        } else if (is_regex_meta(c) || c == ']') {
            return std::nullopt;
        } else {
            glob += c;
        }
    }
    if (!anchored_end && !glob.ends_with('*')) glob += '*';
    return glob;
}

}  // namespace fourbit
