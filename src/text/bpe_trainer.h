// A byte-level BPE trainer: learns merges from a text with MiniMax-M2's pre-tokenizer (the
// GPT-4o regex) and writes a Hugging Face tokenizer.json. make-model uses it so that every
// test checkpoint comes with a real, small tokenizer carrying MiniMax-M2's added tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace fourbit {

struct BpeTrainingOptions {
    // Ids available to the tokenizer (the model's vocabulary size). MiniMax-M2's 64 added
    // tokens take 200000..200063 when it is at least 200064, else its top 64 ids; the 256 byte
    // tokens and the learned merges take the ids from 0.
    int64_t vocab_size = 0;
    // Merges stop earlier when no pair occurs twice in the corpus.
    int64_t max_merges = 1 << 30;
};

// Deterministic: the same corpus and options give the same file. Error if the vocabulary
// cannot hold the byte tokens and the added tokens.
nlohmann::json train_byte_level_bpe(std::string_view corpus, const BpeTrainingOptions& options);

// The id MiniMax-M2's added token at `offset` gets in a vocabulary of `vocab_size`.
int32_t minimax_added_token_id(int64_t vocab_size, int32_t offset);

}  // namespace fourbit
