// libFuzzer target: arbitrary bytes as a tokenizer.json. Loading must succeed or throw
// fourbit::Error (never crash, hang, or throw anything else); a tokenizer that loads must
// encode and decode a few texts.
//
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I src \
//       tests/fuzz/tokenizer_json_fuzz.cpp \
//       src/text/{added_tokens,bpe,byte_level,pre_tokenizer,tokenizer,tokenizer_load,utf8}.cpp \
//       src/util/{error,mapped_file}.cpp -lpcre2-8 -lutf8proc -lfmt -o tokenizer_json_fuzz
//   ./tokenizer_json_fuzz -max_len=2048 seeds/   (seeds: small tokenizer.json files)
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "text/tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view json(reinterpret_cast<const char*>(data), size);
    try {
        const fourbit::Tokenizer tokenizer = fourbit::Tokenizer::from_json_text(json, "fuzz.json");
        for (const char* text : {"", "Hello, world! 123", " \n\t\xe4\xb8\xad\xf0\x9f\x98\x80",
                                 "<|endoftext|>ab", "\xff\xfe"}) {
            const std::string decoded = tokenizer.decode(tokenizer.encode(text));
            (void)decoded;
        }
        for (int32_t id = 0; id < static_cast<int32_t>(tokenizer.vocab_size()) && id < 64; ++id) {
            if (tokenizer.contains(id)) (void)tokenizer.decode(std::vector<int32_t>{id}, true);
        }
    } catch (const fourbit::Error&) {
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tokenizer_json_fuzz: unexpected exception: %s\n", e.what());
        std::abort();
    }
    return 0;
}
