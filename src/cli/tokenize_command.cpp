// `fourbit tokenize` and `fourbit detokenize`: the tokenizer alone, for debugging and tests.
// tokenize prints the ids of a text as a JSON array; detokenize prints the text of ids exactly
// (no newline added), as the server's decode would produce it.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "text/tokenizer.h"
#include "util/error.h"

namespace fourbit {

void add_tokenize_commands(CLI::App& app) {
    struct TokenizeOptions {
        std::string tokenizer_path;
        std::string text_file;
        std::optional<std::string> text;
    };
    auto tokenize = std::make_shared<TokenizeOptions>();
    CLI::App* command =
        app.add_subcommand("tokenize", "print the token ids of a text as a JSON array");
    command->add_option("--tokenizer", tokenize->tokenizer_path, "tokenizer.json")->required();
    CLI::Option* file_option =
        command->add_option("--text-file", tokenize->text_file, "file with the text (- for stdin)");
    CLI::Option* text_option = command->add_option("--text", tokenize->text, "the text itself");
    file_option->excludes(text_option);
    command->callback([tokenize, file_option, text_option] {
        const TokenizeOptions& o = *tokenize;
        if (file_option->count() == 0 && text_option->count() == 0) {
            fail("tokenize: give the text with --text or --text-file");
        }
        const std::string text = o.text ? *o.text : read_input_file("--text-file", o.text_file);
        const Tokenizer tokenizer = Tokenizer::load(o.tokenizer_path);
        const nlohmann::json ids = tokenizer.encode(text);
        std::printf("%s\n", ids.dump().c_str());
    });

    struct DetokenizeOptions {
        std::string tokenizer_path;
        std::string ids;
        bool skip_special_tokens = false;
    };
    auto detokenize = std::make_shared<DetokenizeOptions>();
    command = app.add_subcommand("detokenize", "print the text of token ids");
    command->add_option("--tokenizer", detokenize->tokenizer_path, "tokenizer.json")->required();
    command->add_option("--ids", detokenize->ids, "token ids, e.g. 5,17,3")->required();
    command->add_flag("--skip-special-tokens", detokenize->skip_special_tokens,
                      "leave out special tokens");
    command->callback([detokenize] {
        const DetokenizeOptions& o = *detokenize;
        const std::vector<int32_t> ids = parse_token_ids(o.ids, "--ids");
        const Tokenizer tokenizer = Tokenizer::load(o.tokenizer_path);
        const std::string text = tokenizer.decode(ids, o.skip_special_tokens);
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    });
}

}  // namespace fourbit
