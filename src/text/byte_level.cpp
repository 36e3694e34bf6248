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

}  // namespace fourbit::byte_level
