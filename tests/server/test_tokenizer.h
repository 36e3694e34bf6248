// The tokenizer of a make-model checkpoint (vocabulary 4096, MiniMax-M2's added tokens at the
// top), made once per test process: what `fourbit serve` on the tiny preset uses.
#pragma once

#include "text/tokenizer.h"

namespace fourbit {

const Tokenizer& test_tokenizer();

}  // namespace fourbit
