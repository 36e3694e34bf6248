#include "text/utf8.h"

namespace fourbit::utf8 {

namespace {

// Bytes a sequence starting with `lead` has, or 0 if `lead` cannot start one.
int sequence_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf) return 2;
    if (lead >= 0xe0 && lead <= 0xef) return 3;
    if (lead >= 0xf0 && lead <= 0xf4) return 4;
    return 0;
}

// Whether `second` may follow `lead` (excludes overlongs, surrogates, > U+10FFFF).
bool valid_second(uint8_t lead, uint8_t second) {
    if ((second & 0xc0) != 0x80) return false;
    if (lead == 0xe0) return second >= 0xa0;
    if (lead == 0xed) return second <= 0x9f;
    if (lead == 0xf0) return second >= 0x90;
    if (lead == 0xf4) return second <= 0x8f;
    return true;
}

}  // namespace

size_t complete_prefix_length(std::string_view text) {
    // Only the last three bytes can hold the start of an unfinished sequence.
    const size_t n = text.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto lead = static_cast<uint8_t>(text[n - back]);
        if ((lead & 0xc0) == 0x80) continue;  // a continuation byte: look further back
        const int length = sequence_length(lead);
        if (length <= static_cast<int>(back)) return n;  // complete, ASCII, or invalid lead
        // `back` bytes of a `length`-byte sequence are here: unfinished if they are valid so far.
        if (back >= 2 && !valid_second(lead, static_cast<uint8_t>(text[n - back + 1]))) return n;
        for (size_t i = 2; i < back; ++i) {
            if ((static_cast<uint8_t>(text[n - back + i]) & 0xc0) != 0x80) return n;
        }
        return n - back;
    }
    return n;
}

bool is_valid(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<uint8_t>(text[i]);
        const int length = sequence_length(lead);
        if (length == 0 || i + length > text.size()) return false;
        if (length >= 2 && !valid_second(lead, static_cast<uint8_t>(text[i + 1]))) return false;
        for (int k = 2; k < length; ++k) {
            if ((static_cast<uint8_t>(text[i + k]) & 0xc0) != 0x80) return false;
        }
        i += length;
    }
    return true;
}

}  // namespace fourbit::utf8
