// Added tokens (special or not) found in the text before pre-tokenization, as Hugging Face's
// AddedVocabulary does: leftmost-longest matches, non-overlapping, with the single_word,
// lstrip and rstrip rules. Internal to the tokenizer.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fourbit::text_detail {

struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
};

// Hugging Face (Rust regex) \s and \w, for the lstrip/rstrip/single_word rules: White_Space,
// and alphabetic/mark/decimal digit/connector punctuation/join control (Alphabetic
// approximated by letters, letter numbers and the Other_Alphabetic symbols).
bool is_unicode_space(uint32_t c);
bool is_word_char(uint32_t c);

class AddedTokenMatcher {
public:
    // `patterns[i]` is matched for `tokens[i]` (the content, or its normalized form).
    void build(const std::vector<std::string>& patterns, const std::vector<AddedToken>& tokens);
    bool empty() const { return tokens_.empty(); }

    // Splits valid UTF-8 `text` into on_text(std::string_view) and on_token(int32_t id)
    // callbacks, in order; runs of text may be empty only when `text` is.
    template <typename OnText, typename OnToken>
    void split(std::string_view text, OnText&& on_text, OnToken&& on_token) const {
        if (tokens_.empty()) {
            on_text(text);
            return;
        }
        size_t emitted = 0;  // text before this has been passed on
        size_t i = 0;
        while (i < text.size()) {
            if (!first_byte_[static_cast<uint8_t>(text[i])]) {
                ++i;
                continue;
            }
            size_t length = 0;
            const int32_t t = longest_match(text, i, &length);
            if (t < 0) {
                ++i;
                continue;
            }
            size_t start = i, stop = i + length;
            i = stop;  // a rejected match still consumes its text (as Aho-Corasick does)
            if (!accept(tokens_[t], text, &start, &stop, emitted)) continue;
            if (start > emitted) on_text(text.substr(emitted, start - emitted));
            on_token(tokens_[t].id);
            emitted = stop;
            i = std::max(i, stop);
        }
        if (emitted < text.size()) on_text(text.substr(emitted));
    }

private:
    // Index of the token whose pattern is the longest match at `pos`, or -1.
    int32_t longest_match(std::string_view text, size_t pos, size_t* length) const;
    // Applies single_word (false: not a match), lstrip and rstrip to [*start, *stop).
    static bool accept(const AddedToken& token, std::string_view text, size_t* start, size_t* stop,
                       size_t emitted);

    struct Node {
        int32_t token = -1;       // index into tokens_ of the pattern ending here
        uint32_t first_edge = 0;  // edges_[first_edge, first_edge + n_edges), sorted by byte
        uint32_t n_edges = 0;
    };
    struct Edge {
        uint8_t byte;
        uint32_t child;
    };
    std::vector<Node> nodes_;
    std::vector<Edge> edges_;
    std::array<bool, 256> first_byte_{};
    std::vector<AddedToken> tokens_;
};

}  // namespace fourbit::text_detail
