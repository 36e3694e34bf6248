// UTF-8 helpers shared by the tokenizer, the streaming detokenizer and the parsers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fourbit::utf8 {

// Length of the longest prefix of `text` that ends on a complete UTF-8 sequence: what a
// stream may emit now without splitting a character (the rest waits for more bytes). Bytes
// that can never become valid (a stray continuation byte, an invalid lead byte) count as
// complete, so a stream of garbage still drains.
size_t complete_prefix_length(std::string_view text);

// True when `text` is entirely well-formed UTF-8 (no overlongs, surrogates or values past
// U+10FFFF).
bool is_valid(std::string_view text);

// Appends the UTF-8 encoding of `code_point` (which must be <= U+10FFFF) to `out`.
template <typename String>
void append(String& out, uint32_t code_point) {
    if (code_point < 0x80) {
        out.push_back(static_cast<char>(code_point));
    } else if (code_point < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (code_point >> 6)));
        out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
    } else if (code_point < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (code_point >> 12)));
        out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
    } else {
        out.push_back(static_cast<char>(0xf0 | (code_point >> 18)));
        out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
    }
}

}  // namespace fourbit::utf8
