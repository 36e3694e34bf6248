// The tokenizer files make-model puts into every checkpoint it writes: tokenizer.json (a small
// byte-level BPE learned from the bundled corpus, MiniMax-M2's pre-tokenizer and added tokens),
// tokenizer_config.json and the chat template, so that any test checkpoint can be tokenized,
// served and chatted with by fourbit and by transformers alike.
#pragma once

#include <cstdint>
#include <string>

namespace fourbit {

// Writes DIR/tokenizer.json, DIR/tokenizer_config.json and DIR/chat_template.jinja (the
// MiniMax-M2 template fourbit ships) for a model of `vocab_size` ids.
void write_checkpoint_tokenizer(const std::string& dir, int64_t vocab_size);

// The ids of MiniMax-M2's turn-start and end-of-turn tokens in such a vocabulary
// (generation_config.json's bos_token_id and eos_token_id, as M2.7 publishes them).
int32_t checkpoint_bos_token_id(int64_t vocab_size);  // ]~b]
int32_t checkpoint_eos_token_id(int64_t vocab_size);  // [e~[

}  // namespace fourbit
