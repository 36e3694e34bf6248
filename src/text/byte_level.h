// The GPT-2 byte <-> unicode map of byte-level BPE. Internal to the tokenizer (the lossy UTF-8
// conversion its decoder ends with is utf8::append_lossy).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fourbit::byte_level {

// The code point that stands for `byte` in a byte-level vocabulary ('Ġ' U+0120 for ' ').
uint32_t char_of_byte(uint8_t byte);

// The byte that code point `c` stands for, or -1 when `c` is not one of the 256.
int byte_of_char(uint32_t c);

// Appends the byte-level form of raw `bytes` ("Ġthe" for " the").
void append_mapped(std::string& out, std::string_view bytes);

// The bytes of a byte-level token ("Ġthe" -> " the"); false when a character of `token` is
// not one of the 256 (then `bytes` is unspecified).
bool unmap(std::string_view token, std::string& bytes);

// The bytes a vocabulary entry stands for, as the ByteLevel decoder reads it: unmap() when
// every character is in the map; otherwise the entry's own UTF-8 bytes (added tokens such as
// "<｜User｜>").
std::string unmapped_bytes(std::string_view token);

}  // namespace fourbit::byte_level
