// libFuzzer target: arbitrary bytes (invalid UTF-8 too) through encode, decode and the
// streaming detokenizer of one real tokenizer, loaded once from FOURBIT_FUZZ_TOKENIZER (a
// tokenizer.json). Checks: every id exists; decode gives valid UTF-8; for valid UTF-8 input
// without special-token text, decode(encode(x)) is x (or NFC(x) for an NFC normalizer); for
// invalid input, it is x with each maximal invalid subpart replaced by U+FFFD (the documented
// behaviour); the stream's pieces add up to decode.
//
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I src \
//       tests/fuzz/tokenizer_fuzz.cpp \
//       src/text/{added_tokens,bpe,byte_level,pre_tokenizer,tokenizer,tokenizer_load,utf8}.cpp \
//       src/util/{error,mapped_file}.cpp -lpcre2-8 -lutf8proc -lfmt -o tokenizer_fuzz
//   FOURBIT_FUZZ_TOKENIZER=qwen3.tokenizer.json ./tokenizer_fuzz -max_len=4096
#include <utf8proc.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

struct Target {
    fourbit::Tokenizer tokenizer;
    std::vector<std::string> special_texts;
};

const Target& target() {
    static const Target* t = [] {
        const char* path = std::getenv("FOURBIT_FUZZ_TOKENIZER");
        if (path == nullptr || *path == 0) {
            std::fprintf(stderr,
                         "tokenizer_fuzz: set FOURBIT_FUZZ_TOKENIZER to a tokenizer.json\n");
            std::abort();
        }
        auto* loaded = new Target{fourbit::Tokenizer::load(path), {}};
        for (int32_t id = 0; id < static_cast<int32_t>(loaded->tokenizer.vocab_size()); ++id) {
            if (loaded->tokenizer.is_special(id)) {
                loaded->special_texts.emplace_back(*loaded->tokenizer.token_text(id));
            }
        }
        return loaded;
    }();
    return *t;
}

std::string nfc(std::string_view text) {
    utf8proc_uint8_t* result = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                static_cast<utf8proc_ssize_t>(text.size()), &result,
                                static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    std::string out = n >= 0 ? std::string(reinterpret_cast<char*>(result), n) : std::string();
    std::free(result);
    return out;
}

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const Target& t = target();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::vector<int32_t> ids = t.tokenizer.encode(text);
    for (int32_t id : ids) check(t.tokenizer.contains(id), "encode gave an id with no token");
    check(ids.empty() == text.empty(), "encode dropped a non-empty text or invented tokens");

    const std::string decoded = t.tokenizer.decode(ids);
    check(fourbit::utf8::is_valid(decoded), "decode gave invalid UTF-8");
    if (fourbit::utf8::is_valid(text)) {
        bool has_special = false;
        for (const std::string& s : t.special_texts) has_special |= text.find(s) != text.npos;
        if (!has_special) {
            check(decoded == text || decoded == nfc(text), "decode(encode(x)) != x");
        }
    } else {
        std::string replaced;
        fourbit::utf8::append_lossy(replaced, text);
        check(t.tokenizer.encode(replaced) == ids, "encode(x) != encode(lossy(x))");
    }

    fourbit::StreamDetokenizer stream(t.tokenizer);
    std::string streamed;
    for (int32_t id : ids) {
        const std::string piece = stream.push(id);
        check(fourbit::utf8::is_valid(piece), "stream gave invalid UTF-8");
        streamed += piece;
    }
    streamed += stream.flush();
    check(streamed == decoded, "streamed text != decode");
    return 0;
}
