#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace fourbit::byte_level {

namespace {

struct Tables {
    std::array<uint32_t, 256> char_of_byte{};
    std::array<int16_t, 512> byte_of_char{};  // every mapped code point is below U+0200
};

// GPT-2's choice: printable Latin-1 bytes stand for themselves; the other 68 (controls, space,
// 0x7f-0xa0, 0xad) take the code points from U+0100 up, in byte order.
Tables make_tables() {
    Tables t;
    t.byte_of_char.fill(-1);
    auto keeps_itself = [](int b) {
        return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
        t.char_of_byte[b] = keeps_itself(b) ? static_cast<uint32_t>(b) : next++;
        t.byte_of_char[t.char_of_byte[b]] = static_cast<int16_t>(b);
    }
    return t;
}

const Tables& tables() {
    static const Tables t = make_tables();
    return t;
}

// Length of the valid UTF-8 sequence at the start of `s` (s non-empty), or 0 if there is none.
// `*invalid` receives the length of the maximal invalid subpart when 0 is returned.
size_t valid_sequence(std::string_view s, size_t* invalid) {
    const auto b0 = static_cast<uint8_t>(s[0]);
    if (b0 < 0x80) return 1;
    size_t length = 0;
    uint8_t low = 0x80, high = 0xbf;  // range of the second byte
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        length = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        length = 3;
        if (b0 == 0xe0) low = 0xa0;
        if (b0 == 0xed) high = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        length = 4;
        if (b0 == 0xf0) low = 0x90;
        if (b0 == 0xf4) high = 0x8f;
    } else {
        *invalid = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < length && i < s.size(); ++i) {
        const auto b = static_cast<uint8_t>(s[i]);
        const bool ok = i == 1 ? (b >= low && b <= high) : (b >= 0x80 && b <= 0xbf);
        if (!ok) break;
    }
    if (i == length) return length;
    *invalid = i;  // the lead byte and the continuation bytes that were still possible
    return 0;
}

}  // namespace

uint32_t char_of_byte(uint8_t byte) { return tables().char_of_byte[byte]; }

int byte_of_char(uint32_t c) { return c < 512 ? tables().byte_of_char[c] : -1; }

void append_mapped(std::string& out, std::string_view bytes) {
    const Tables& t = tables();
    for (char b : bytes) utf8::append(out, t.char_of_byte[static_cast<uint8_t>(b)]);
}

bool unmap(std::string_view token, std::string& bytes) {
    bytes.clear();
    size_t i = 0;
    while (i < token.size()) {
        // Vocabulary strings come from JSON, so they are valid UTF-8; a mapped code point is
        // below U+0200, i.e. one or two bytes.
        const auto b0 = static_cast<uint8_t>(token[i]);
        int byte = -1;
        if (b0 < 0x80) {
            byte = byte_of_char(b0);
            i += 1;
        } else if ((b0 & 0xe0) == 0xc0 && i + 1 < token.size()) {
            byte = byte_of_char(((b0 & 0x1fu) << 6) | (static_cast<uint8_t>(token[i + 1]) & 0x3fu));
            i += 2;
        }
        if (byte < 0) return false;
        bytes.push_back(static_cast<char>(byte));
    }
    return true;
}

std::string unmapped_bytes(std::string_view token) {
    std::string bytes;
    if (!unmap(token, bytes)) bytes.assign(token);
    return bytes;
}

void append_lossy_utf8(std::string& out, std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        // Copy the run of ASCII and valid sequences in one go.
        size_t start = i;
        size_t invalid = 0;
        while (i < bytes.size()) {
            const size_t n = valid_sequence(bytes.substr(i), &invalid);
            if (n == 0) break;
            i += n;
        }
        out.append(bytes.data() + start, i - start);
        if (i < bytes.size()) {
            out.append("\xef\xbf\xbd");  // U+FFFD
            i += invalid;
        }
    }
}

}  // namespace fourbit::byte_level
