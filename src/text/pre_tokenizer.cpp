#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pre_tokenizer.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "util/error.h"

namespace fourbit::text_detail {

MatchScratch::MatchScratch() {
    // One pair: only the whole match is used, and JIT does less work for a short ovector.
    data_ = pcre2_match_data_create(1, nullptr);
    context_ = pcre2_match_context_create(nullptr);
    // The default 32 KiB JIT stack fails on long runs of one character class.
    jit_stack_ = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
    FOURBIT_ASSERT(data_ && context_ && jit_stack_, "PCRE2 could not allocate match state");
    pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
}

MatchScratch::~MatchScratch() {
    pcre2_jit_stack_free(jit_stack_);
    pcre2_match_context_free(context_);
    pcre2_match_data_free(data_);
}

namespace {

// Oniguruma's (Hugging Face's) classes where PCRE2 differs: \s is White_Space (PCRE2 adds
// U+180E), \w is letters, marks, decimal digits and connector punctuation (PCRE2 10.42: letters,
// all numbers, '_'), \h is a hex digit (PCRE2: horizontal space). Written as class contents.
constexpr std::string_view kSpace =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
constexpr std::string_view kWord = R"(\p{L}\p{M}\p{Nd}\p{Pc})";
constexpr std::string_view kHexDigit = "0-9A-Fa-f";

// Rewrites \s \S \w \W \h \H of an Oniguruma pattern into PCRE2 classes with Oniguruma's
// meaning. Inside a character class only the positive forms can be spelled out; a negated one
// there (rare) keeps PCRE2's meaning.
std::string to_pcre2_syntax(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size() + 64);
    bool in_class = false;
    size_t i = 0;
    while (i < pattern.size()) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[i + 1];
            if (e == 'Q') {  // \Q...\E: copied as it is
                const size_t end = pattern.find("\\E", i + 2);
                const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
                out.append(pattern.substr(i, stop - i));
                i = stop;
                continue;
            }
            std::string_view contents;
            bool negated = false;
            switch (e) {
                case 's':
                    contents = kSpace;
                    break;
                case 'S':
                    contents = kSpace;
                    negated = true;
                    break;
                case 'w':
                    contents = kWord;
                    break;
                case 'W':
                    contents = kWord;
                    negated = true;
                    break;
                case 'h':
                    contents = kHexDigit;
                    break;
                case 'H':
                    contents = kHexDigit;
                    negated = true;
                    break;
                default:
                    break;
            }
            if (!contents.empty() && !(in_class && negated)) {
                if (in_class) {
                    out.append(contents);
                } else {
                    out.append(negated ? "[^" : "[").append(contents).append("]");
                }
            } else {
                out.append(pattern.substr(i, 2));
            }
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out.push_back(c);
            ++i;
            if (i < pattern.size() && pattern[i] == '^') out.push_back(pattern[i++]);
            if (i < pattern.size() && pattern[i] == ']') out.push_back(pattern[i++]);  // literal
            continue;
        }
        if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
            const size_t end = pattern.find(":]", i + 2);  // a POSIX class such as [:alpha:]
            if (end != std::string_view::npos) {
                out.append(pattern.substr(i, end + 2 - i));
                i = end + 2;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        out.push_back(c);
        ++i;
    }
    return out;
}

}  // namespace

Regex Regex::compile(std::string_view pattern, bool literal, const std::string& where) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // PCRE2_LITERAL allows no other option that changes matching.
    const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
    const std::string translated = literal ? std::string(pattern) : to_pcre2_syntax(pattern);
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options,
                      &error_code, &error_offset, nullptr);
    if (code == nullptr) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error_code, message, sizeof(message));
        fail("{}: pattern '{}' does not compile (at offset {}): {}", where, pattern, error_offset,
             reinterpret_cast<const char*>(message));
    }
    Regex regex;
    regex.code_.reset(code, pcre2_code_free);
    // JIT is an optimisation: where it is unavailable the interpreter gives the same matches.
    regex.jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    return regex;
}

bool Regex::find(std::string_view subject, size_t start, MatchScratch& scratch, size_t* match_start,
                 size_t* match_end) const {
    const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
    int rc = PCRE2_ERROR_JIT_STACKLIMIT;
    if (jit_) {
        rc = pcre2_jit_match(code_.get(), text, subject.size(), start, 0, scratch.data_,
                             scratch.context_);
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // no JIT, or a piece too long for its stack
        rc = pcre2_match(code_.get(), text, subject.size(), start,
                         PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, scratch.data_, scratch.context_);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        fail("pre-tokenizer pattern failed on a text of {} bytes: {}", subject.size(),
             reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data_);
    *match_start = ovector[0];
    *match_end = ovector[1];
    return true;
}

bool may_need_nfc(std::string_view text) {
    for (char c : text) {
        if (static_cast<uint8_t>(c) >= 0xcc) return true;  // lead byte of U+0300 and above
    }
    return false;
}

namespace {

// Appends NFC(`text`) to `out`, through `buffer` (code points, reused between calls).
void append_nfc(std::string_view text, std::string& out, std::vector<int32_t>& buffer) {
    const auto options = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    const auto length = static_cast<utf8proc_ssize_t>(text.size());
    if (buffer.size() < text.size() + 16) buffer.resize(text.size() + 16);
    utf8proc_ssize_t n = utf8proc_decompose(bytes, length, buffer.data(),
                                            static_cast<utf8proc_ssize_t>(buffer.size()), options);
    if (n > static_cast<utf8proc_ssize_t>(buffer.size())) {  // decompositions can grow a lot
        buffer.resize(n);
        n = utf8proc_decompose(bytes, length, buffer.data(), n, options);
    }
    if (n >= 0) n = utf8proc_reencode(buffer.data(), n, options);  // composes, then UTF-8
    if (n < 0) fail("NFC normalizer: {}", utf8proc_errmsg(n));
    out.append(reinterpret_cast<const char*>(buffer.data()), static_cast<size_t>(n));
}

}  // namespace

void nfc(std::string_view text, std::string& out, std::vector<int32_t>& buffer) {
    // NOTE: NFC(a + b) == NFC(a) + NFC(b) when b starts with an ASCII character: ASCII is a
    // starter that no composition takes as its second part, so nothing reorders or composes
    // across it. Only the stretches between ASCII characters that hold a code point from
    // U+0300 up (lead byte 0xCC and above) go through utf8proc, each with the ASCII
    // character before it (a base that a combining mark may join).
    out.clear();
    const size_t n = text.size();
    size_t copied = 0;
    size_t i = 0;
    while (i < n) {
        if (static_cast<uint8_t>(text[i]) < 0xcc) {
            ++i;
            continue;
        }
        size_t start = i;
        while (start > copied && static_cast<uint8_t>(text[start - 1]) >= 0x80) --start;
        if (start > copied) --start;  // the ASCII character before the stretch
        size_t end = i;
        while (end < n && static_cast<uint8_t>(text[end]) >= 0x80) ++end;
        out.append(text.substr(copied, start - copied));
        append_nfc(text.substr(start, end - start), out, buffer);
        copied = end;
        i = end;
    }
    out.append(text.substr(copied));
}

}  // namespace fourbit::text_detail
