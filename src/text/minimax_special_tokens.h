// MiniMax-M2's added tokens (minimax_m2.md §4): what the chat format and the parsers are made
// of. Real checkpoints number them from 200000; make-model places the same list at the top of a
// smaller vocabulary.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace fourbit {

struct AddedTokenSpec {
    std::string_view content;
    int32_t offset;  // id - 200000 in MiniMax-M2's vocabulary
    bool special;    // false: survives skip_special_tokens (think and tool-call tags)
};

// Every added token of MiniMax-M2, in id order; 64 entries, offsets 0..63.
const std::vector<AddedTokenSpec>& minimax_m2_added_tokens();

inline constexpr int32_t kMiniMaxM2AddedTokenBase = 200000;
inline constexpr int32_t kMiniMaxM2AddedTokenCount = 64;

}  // namespace fourbit
