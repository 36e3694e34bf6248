#include "text/bpe_trainer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/minimax_special_tokens.h"
#include "text/utf8.h"
#include "util/error.h"

namespace fourbit {

namespace {

// MiniMax-M2's pre-tokenizer split (the GPT-4o regex, minimax_m2.md §4).
constexpr std::string_view kPreTokenizerRegex =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The pieces the regex matches, counted.
std::map<std::string, int64_t> count_pieces(std::string_view corpus) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> code(
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPreTokenizerRegex.data()),
                      kPreTokenizerRegex.size(), PCRE2_UTF | PCRE2_UCP, &error, &error_offset,
                      nullptr),
        pcre2_code_free);
    FOURBIT_ASSERT(code != nullptr, "pre-tokenizer regex does not compile ({})", error);
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // falls back to the interpreter
    if (!utf8::is_valid(corpus)) fail("the tokenizer training text is not valid UTF-8");
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
        pcre2_match_data_create_from_pattern(code.get(), nullptr), pcre2_match_data_free);
    std::map<std::string, int64_t> counts;
    size_t start = 0;
    while (start < corpus.size()) {
        int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(corpus.data()),
                             corpus.size(), start, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match.get());
        if (span[1] == span[0]) break;
        ++counts[std::string(corpus.substr(span[0], span[1] - span[0]))];
        start = span[1];
    }
    return counts;
}

// GPT-2's byte <-> printable character map: printable Latin-1 bytes stand for themselves,
// the other 68 bytes take code points from U+0100 on.
std::vector<std::string> byte_symbols() {
    std::vector<std::string> symbols(256);
    uint32_t next = 256;
    for (uint32_t byte = 0; byte < 256; ++byte) {
        bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xa1 && byte <= 0xac) ||
                         (byte >= 0xae && byte <= 0xff);
        utf8::append(symbols[byte], printable ? byte : next++);
    }
    return symbols;
}

}  // namespace

int32_t minimax_added_token_id(int64_t vocab_size, int32_t offset) {
    const int64_t base = vocab_size >= kMiniMaxM2AddedTokenBase + kMiniMaxM2AddedTokenCount
                             ? kMiniMaxM2AddedTokenBase
                             : vocab_size - kMiniMaxM2AddedTokenCount;
    return static_cast<int32_t>(base + offset);
}

nlohmann::json train_byte_level_bpe(std::string_view corpus, const BpeTrainingOptions& options) {
    const int64_t first_added = minimax_added_token_id(options.vocab_size, 0);
    if (first_added < 256) {
        fail("a byte-level vocabulary of {} cannot hold 256 byte tokens and {} added tokens",
             options.vocab_size, kMiniMaxM2AddedTokenCount);
    }
    const std::vector<std::string> symbols_of_byte = byte_symbols();
    std::vector<std::string> vocab = symbols_of_byte;  // id -> token text

    // Each distinct piece as a sequence of token ids, with its count.
    struct Word {
        std::vector<int32_t> ids;
        int64_t count;
    };
    std::vector<Word> words;
    for (const auto& [piece, count] : count_pieces(corpus)) {
        Word word{{}, count};
        for (unsigned char byte : piece) word.ids.push_back(byte);
        words.push_back(std::move(word));
    }

    // Pair counts kept up to date incrementally: a merge only touches the words that hold the
    // merged pair (`holders`, which may list a word more than once or after it changed).
    auto key = [](int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); };
    std::unordered_map<uint64_t, int64_t> pair_counts;
    std::unordered_map<uint64_t, std::vector<int32_t>> holders;
    auto add_pairs = [&](int32_t w, int64_t sign) {
        const Word& word = words[w];
        for (size_t i = 0; i + 1 < word.ids.size(); ++i) {
            uint64_t k = key(word.ids[i], word.ids[i + 1]);
            pair_counts[k] += sign * word.count;
            if (sign > 0) holders[k].push_back(w);
        }
    };
    for (int32_t w = 0; w < static_cast<int32_t>(words.size()); ++w) add_pairs(w, +1);

    nlohmann::json merges = nlohmann::json::array();
    std::vector<int64_t> last_merge_of_word(words.size(), -1);
    const int64_t merge_budget = std::min<int64_t>(options.max_merges, first_added - 256);
    for (int64_t m = 0; m < merge_budget; ++m) {
        // The most frequent pair; among equals the one whose merged text sorts first, so that
        // training does not depend on hash order.
        int64_t best_count = 1;
        for (const auto& entry : pair_counts) best_count = std::max(best_count, entry.second);
        uint64_t best = 0;
        std::string best_text;
        if (best_count >= 2) {
            for (const auto& [pair, count] : pair_counts) {
                if (count != best_count) continue;
                std::string text = vocab[pair >> 32] + vocab[pair & 0xffffffffu];
                if (best_text.empty() || text < best_text) {
                    best = pair;
                    best_text = std::move(text);
                }
            }
        }
        if (best_text.empty()) break;  // no pair occurs twice
        const auto first = static_cast<int32_t>(best >> 32);
        const auto second = static_cast<int32_t>(best & 0xffffffffu);
        const auto merged = static_cast<int32_t>(vocab.size());
        merges.push_back(vocab[first] + " " + vocab[second]);
        vocab.push_back(best_text);
        std::vector<int32_t> affected = std::move(holders[best]);
        holders.erase(best);
        for (int32_t w : affected) {
            if (last_merge_of_word[w] == m) continue;  // listed twice
            last_merge_of_word[w] = m;
            Word& word = words[w];
            add_pairs(w, -1);
            std::vector<int32_t> next;
            next.reserve(word.ids.size());
            for (size_t i = 0; i < word.ids.size(); ++i) {
                if (i + 1 < word.ids.size() && word.ids[i] == first && word.ids[i + 1] == second) {
                    next.push_back(merged);
                    ++i;
                } else {
                    next.push_back(word.ids[i]);
                }
            }
            word.ids = std::move(next);
            add_pairs(w, +1);
        }
        if (m % 256 == 255) {  // drop pairs that no longer occur, now and then
            std::erase_if(pair_counts, [](const auto& entry) { return entry.second <= 0; });
        }
    }

    nlohmann::json vocab_json = nlohmann::json::object();
    for (size_t id = 0; id < vocab.size(); ++id) vocab_json[vocab[id]] = id;
    nlohmann::json added = nlohmann::json::array();
    for (const AddedTokenSpec& token : minimax_m2_added_tokens()) {
        // In the model's vocabulary too, as real files have them: Hugging Face renumbers added
        // tokens that the vocabulary lacks.
        vocab_json[std::string(token.content)] =
            minimax_added_token_id(options.vocab_size, token.offset);
        added.push_back({{"id", minimax_added_token_id(options.vocab_size, token.offset)},
                         {"content", token.content},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", token.special}});
    }
    nlohmann::json byte_level = {{"type", "ByteLevel"},
                                 {"add_prefix_space", false},
                                 {"trim_offsets", false},
                                 {"use_regex", false}};
    return {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", added},
        {"normalizer", nullptr},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"},
             {"pattern", {{"Regex", std::string(kPreTokenizerRegex)}}},
             {"behavior", "Isolated"},
             {"invert", false}},
            byte_level}}}},
        {"post_processor", nullptr},
        {"decoder", byte_level},
        {"model",
         {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"continuing_subword_prefix", ""},
          {"end_of_word_suffix", ""},
          {"fuse_unk", false},
          {"byte_fallback", false},
          {"ignore_merges", false},
          {"vocab", vocab_json},
          {"merges", merges}}},
    };
}

}  // namespace fourbit
