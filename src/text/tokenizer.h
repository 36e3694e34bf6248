// The tokenizer: Hugging Face tokenizer.json files of the byte-level BPE kind (MiniMax-M2,
// Qwen3, Llama 3, DeepSeek-V3, GPT-4o), encoding and decoding exactly as Hugging Face
// `tokenizers` does, and the streaming detokenizer the server uses.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fourbit {

namespace text_detail {
struct TokenizerState;
}

// Immutable once loaded; copies share the loaded state, and every method may be called from
// any number of threads at once.
//
// Supported: normalizer null, NFC, or a Sequence of those; pre_tokenizer a Sequence of Split
// (regex or string pattern, any behaviour, invert) ending in ByteLevel, or ByteLevel alone
// (add_prefix_space, use_regex); model BPE with merges as "a b" strings or ["a", "b"] pairs,
// ignore_merges, unk_token and fuse_unk; added tokens with every flag; decoder ByteLevel.
// Anything else (Unigram, WordPiece, other normalizers or pre-tokenizers, byte_fallback,
// dropout, subword prefixes) is refused with an Error naming the component and the file. The
// post_processor is ignored: encode() is Hugging Face's encode(text, add_special_tokens=False).
//
// Split patterns are Oniguruma syntax run by PCRE2 (\s, \w, \h rewritten to Oniguruma's
// meaning). Known difference: PCRE2 10.42 knows Unicode 14 while Hugging Face's Oniguruma
// knows Unicode 16, so letters, digits and marks assigned in Unicode 15-16 (CJK extension H,
// Kawi, Garay, ...) fall in other \p{..} classes and can be split differently.
class Tokenizer {
public:
    // Error naming the file and the field when the file is unreadable, not JSON, malformed or
    // of an unsupported kind.
    static Tokenizer load(const std::string& path);
    // The same from the text of a tokenizer.json; `source` names it in errors.
    static Tokenizer from_json_text(std::string_view json, const std::string& source);

    // Hugging Face `encode(text, add_special_tokens=False).ids`: added tokens written in the
    // text (special ones too) are matched first. Invalid UTF-8 is first replaced as Python's
    // bytes.decode(errors="replace") does: each maximal invalid subpart becomes U+FFFD, so
    // encode(x) == encode(lossy(x)) and decode(encode(x)) == lossy(x) (NFC'd where the
    // normalizer asks).
    std::vector<int32_t> encode(std::string_view text) const;
    // Appends to `out`; once a thread's buffers and BPE cache are warm, allocates nothing but
    // `out`'s growth.
    void encode(std::string_view text, std::vector<int32_t>& out) const;

    // Hugging Face `decode(ids, skip_special_tokens)`: the tokens' bytes joined, invalid UTF-8
    // replaced by U+FFFD. Error naming the id for an id with no token.
    std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

    // The id of a vocabulary entry ("Ġthe") or added token ("<think>"), as written in
    // tokenizer.json.
    std::optional<int32_t> token_id(std::string_view token_text) const;
    // The text of token `id` as written in tokenizer.json; nullopt when no token has it.
    std::optional<std::string_view> token_text(int32_t id) const;
    // The bytes token `id` decodes to (may be part of a UTF-8 character); Error if no token.
    std::string_view token_bytes(int32_t id) const;
    bool contains(int32_t id) const;
    // Largest id + 1 (ids may have gaps).
    size_t vocab_size() const;
    // Whether `id` is an added token marked special (skipped by skip_special_tokens).
    bool is_special(int32_t id) const;

    // The pre-tokenizer's pieces of the normalized text, in byte-level form ("Ġthe"), as
    // Hugging Face's pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)) gives
    // them (added tokens are not looked for): the words a BPE trainer counts.
    std::vector<std::string> pre_tokenize(std::string_view text) const;

    const std::string& source() const;

private:
    explicit Tokenizer(std::shared_ptr<const text_detail::TokenizerState> state);
    std::shared_ptr<const text_detail::TokenizerState> state_;
};

// Text of generated ids as they come, for streaming responses: push() returns only new text,
// never splits a UTF-8 character (bytes of an unfinished one wait for the next ids) and never
// takes back what it returned; flush() returns what is left at the end. The concatenation of
// everything returned equals tokenizer.decode(all ids, skip_special_tokens).
class StreamDetokenizer {
public:
    explicit StreamDetokenizer(Tokenizer tokenizer, bool skip_special_tokens = false);
    // Error naming the id for an id with no token (the stream is unchanged).
    std::string push(int32_t id);
    // Appending form of push.
    void push(int32_t id, std::string& out);
    // The rest: an unfinished character becomes U+FFFD. The stream is then empty again.
    std::string flush();

private:
    Tokenizer tokenizer_;
    bool skip_special_tokens_;
    std::string pending_;  // bytes of an unfinished UTF-8 character, at most 3
};

}  // namespace fourbit
