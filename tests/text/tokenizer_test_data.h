// What the tokenizer tests share: the four reference tokenizers (loaded once per process), the
// golden data of tests/golden/tokenizers/expected.json, and the tiny tokenizer's variants.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace fourbit::tokenizer_test {

// qwen3, llama3, deepseek_v3, gpt4o.
const std::vector<std::string>& vocabularies();
std::string tokenizer_path(const std::string& vocabulary);
const Tokenizer& reference_tokenizer(const std::string& vocabulary);

const nlohmann::json& expected();
// tests/golden/tokenizers/tiny.tokenizer.json.
const nlohmann::json& tiny_json();
// The tiny tokenizer with a variant of expected.json applied (its `set` and `model` fields).
nlohmann::json apply_variant(const nlohmann::json& variant);

std::string read_file(const std::string& path);

// "[1, 2, 3]" for failure messages.
std::string show(const std::vector<int32_t>& ids);

}  // namespace fourbit::tokenizer_test
