// What a loaded tokenizer.json becomes: immutable, shared by every copy of a Tokenizer and by
// every thread. Internal to the tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/pre_tokenizer.h"
#include "text/string_id_map.h"

namespace fourbit::text_detail {

struct ByteLevelStep {
    bool add_prefix_space = false;
    bool use_regex = false;
    SplitStep gpt2;  // GPT-2's pattern, Isolated; compiled only when use_regex
};

struct TokenizerState {
    uint64_t instance = 0;  // unique per load: keys the thread-local encode buffers and cache
    std::string source;

    bool nfc = false;  // the normalizer (null, NFC, Sequences of them)
    // Added tokens matched in the raw text, then (normalized: true) in the normalized text.
    AddedTokenMatcher raw_added;
    AddedTokenMatcher normalized_added;
    // The pre-tokenizer: Splits in order, then ByteLevel.
    std::vector<SplitStep> splits;
    ByteLevelStep byte_level;
    BpeModel bpe;

    // Per id (index < vocab_size): flags, the text as in tokenizer.json, the decoded bytes.
    enum : uint8_t { kExists = 1, kSpecial = 2 };
    std::vector<uint8_t> flags;
    std::vector<uint32_t> text_offsets;  // vocab_size + 1 offsets into text_arena
    std::string text_arena;
    std::vector<uint32_t> bytes_offsets;  // vocab_size + 1 offsets into bytes_arena
    std::string bytes_arena;
    StringIdMap text_to_id;  // vocabulary entries and added tokens

    size_t vocab_size() const { return flags.size(); }
    bool contains(int32_t id) const {
        return id >= 0 && static_cast<size_t>(id) < flags.size() && (flags[id] & kExists);
    }
    std::string_view bytes_of(int32_t id) const {
        return std::string_view(bytes_arena)
            .substr(bytes_offsets[id], bytes_offsets[id + 1] - bytes_offsets[id]);
    }
    std::string_view text_of(int32_t id) const {
        return std::string_view(text_arena)
            .substr(text_offsets[id], text_offsets[id + 1] - text_offsets[id]);
    }
};

// Parses and checks a tokenizer.json (tokenizer_load.cpp).
std::shared_ptr<const TokenizerState> load_tokenizer_state(std::string_view json,
                                                           const std::string& source);

}  // namespace fourbit::text_detail
