#include "text/utf8.h"

namespace fourbit::utf8 {

int sequence_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xc2 && lead <= 0xdf) return 2;
    if (lead >= 0xe0 && lead <= 0xef) return 3;
    if (lead >= 0xf0 && lead <= 0xf4) return 4;
    return 0;
}

bool valid_continuation(uint8_t lead, size_t position, uint8_t byte) {
    if ((byte & 0xc0) != 0x80) return false;
    if (position != 1) return true;
    if (lead == 0xe0) return byte >= 0xa0;  // overlong
    if (lead == 0xed) return byte <= 0x9f;  // surrogate
    if (lead == 0xf0) return byte >= 0x90;  // overlong
    if (lead == 0xf4) return byte <= 0x8f;  // past U+10FFFF
    return true;
}

namespace {

// How many bytes at the start of `bytes` agree with a well-formed sequence of `length` (>= 1)
// bytes led by bytes[0]: `length` when the whole sequence is there, otherwise the lead and the
// continuation bytes that were still possible (a maximal ill-formed subpart, or a sequence
// that `bytes` ends before finishing).
size_t matching_prefix(std::string_view bytes, size_t length) {
    const auto lead = static_cast<uint8_t>(bytes[0]);
    size_t good = 1;
    while (good < length && good < bytes.size() &&
           valid_continuation(lead, good, static_cast<uint8_t>(bytes[good]))) {
        ++good;
    }
    return good;
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
        return matching_prefix(text.substr(n - back), length) == back ? n - back : n;
    }
    return n;
}

bool is_valid(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
        const int length = sequence_length(static_cast<uint8_t>(text[i]));
        if (length == 0 || matching_prefix(text.substr(i), length) != static_cast<size_t>(length)) {
            return false;
        }
        i += length;
    }
    return true;
}

void append_lossy(std::string& out, std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        // Copy the run of well-formed sequences in one go.
        const size_t start = i;
        size_t good = 0;  // of the ill-formed sequence that ends the run
        while (i < bytes.size()) {
            const int length = sequence_length(static_cast<uint8_t>(bytes[i]));
            good = length == 0 ? 0 : matching_prefix(bytes.substr(i), length);
            if (length == 0 || good != static_cast<size_t>(length)) break;
            i += length;
        }
        out.append(bytes.data() + start, i - start);
        if (i < bytes.size()) {
            out += "\xef\xbf\xbd";  // U+FFFD
            i += good == 0 ? 1 : good;
        }
    }
}

}  // namespace fourbit::utf8
