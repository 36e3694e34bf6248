// UTF-8 helpers shared by the tokenizer, the streaming detokenizer and the parsers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fourbit::utf8 {

// Bytes a UTF-8 sequence starting with `lead` has (1 to 4), or 0 when `lead` cannot start a
// well-formed one: a continuation byte, the overlong leads 0xc0 and 0xc1, or 0xf5 and above.
int sequence_length(uint8_t lead);

// Whether `byte` may stand at `position` (1 to 3) of a sequence that starts with `lead`: it is
// a continuation byte (10xxxxxx) and, right after the lead, inside the narrower range that
// rules out overlongs (after 0xe0, 0xf0), surrogates (after 0xed) and code points past
// U+10FFFF (after 0xf4).
bool valid_continuation(uint8_t lead, size_t position, uint8_t byte);

// Length of the longest prefix of `text` that ends on a complete UTF-8 sequence: what a
// stream may emit now without splitting a character (the rest waits for more bytes). Bytes
// that can never become valid (a stray continuation byte, an invalid lead byte) count as
// complete, so a stream of garbage still drains.
size_t complete_prefix_length(std::string_view text);

// True when `text` is entirely well-formed UTF-8 (no overlongs, surrogates or values past
// U+10FFFF).
bool is_valid(std::string_view text);

// Appends `bytes` to `out` as well-formed UTF-8, each maximal ill-formed subsequence replaced
// by U+FFFD (what Rust's String::from_utf8_lossy and Python's errors="replace" do). Decoding
// restarts at every ASCII byte, so converting a text in pieces cut before an ASCII byte or
// where complete_prefix_length says gives the same result as converting it whole.
void append_lossy(std::string& out, std::string_view bytes);

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
