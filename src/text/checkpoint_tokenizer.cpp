#include "text/checkpoint_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>

#include "text/bpe_trainer.h"
#include "text/chat_template.h"
#include "util/error.h"

namespace fourbit {

namespace assets {
extern const char tokenizer_corpus[];
extern const unsigned long tokenizer_corpus_size;
}  // namespace assets

namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) fail("cannot write {}", path.string());
}

}  // namespace

int32_t checkpoint_bos_token_id(int64_t vocab_size) { return minimax_added_token_id(vocab_size, 19); }

int32_t checkpoint_eos_token_id(int64_t vocab_size) { return minimax_added_token_id(vocab_size, 20); }

void write_checkpoint_tokenizer(const std::string& dir, int64_t vocab_size) {
    BpeTrainingOptions options;
    options.vocab_size = vocab_size;
    const std::string_view corpus(assets::tokenizer_corpus, assets::tokenizer_corpus_size);
    const std::filesystem::path root(dir);
    write_text(root / "tokenizer.json", train_byte_level_bpe(corpus, options).dump(1) + "\n");
    const nlohmann::ordered_json config = {
        {"tokenizer_class", "PreTrainedTokenizerFast"},
        {"bos_token", "]~!b["},
        {"eos_token", "[e~["},
        {"unk_token", "]!d~["},
        {"add_bos_token", false},
        {"add_eos_token", false},
        {"add_prefix_space", false},
        {"clean_up_tokenization_spaces", false},
        {"model_max_length", 40960000},
        {"tool_parser_type", "minimax_m2"},
    };
    write_text(root / "tokenizer_config.json", config.dump(2) + "\n");
    write_text(root / "chat_template.jinja", std::string(builtin_chat_template_text()));
}

}  // namespace fourbit
