// `fourbit tokenize` and `fourbit detokenize` end to end: the real binary as a child process.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tokenizer_test_data.h"

namespace fourbit {
namespace {

using nlohmann::json;
using namespace tokenizer_test;
namespace fs = std::filesystem;

struct CliRun {
    int exit_code = -1;
    std::string out, err;
};

std::string quote(const std::string& word) {
    std::string text = "'";
    for (char c : word) text += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return text + "'";
}

// Runs the fourbit binary with `args` (through sh, each argument quoted).
CliRun run_fourbit(const std::vector<std::string>& args) {
    const fs::path err_path =
        fs::temp_directory_path() / ("fourbit_tokenizer_cli_" + std::to_string(::getpid()));
    std::string command = quote(FOURBIT_BINARY);
    // Appended piece by piece: GCC 12 warns falsely of overlapping copies in `" " + string&&`
    // (-Wrestrict, its bug 105329).
    for (const std::string& arg : args) command.append(" ").append(quote(arg));
    command += " 2>" + quote(err_path.string());
    CliRun run;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return run;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;)
        run.out.append(buffer, n);
    const int status = ::pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.err = read_file(err_path.string());
    fs::remove(err_path);
    return run;
}

TEST(TokenizerCli, TokenizePrintsTheIdsAsJson) {
    for (const json& c : expected().at("cases")) {
        if (c.at("name") != "special_qwen") continue;
        const CliRun run = run_fourbit({"tokenize", "--tokenizer", tokenizer_path("qwen3"),
                                        "--text", c.at("text").get<std::string>()});
        ASSERT_EQ(run.exit_code, 0) << run.err;
        EXPECT_EQ(json::parse(run.out), c.at("results").at("qwen3").at("ids"));
    }
}

TEST(TokenizerCli, TokenizeReadsATextFile) {
    const fs::path path =
        fs::temp_directory_path() / ("fourbit_tok_text_" + std::to_string(::getpid()));
    const std::string text = "line one\r\n\tline two \xe4\xb8\xad\n";
    std::ofstream(path, std::ios::binary) << text;
    const CliRun run = run_fourbit(
        {"tokenize", "--tokenizer", tokenizer_path("llama3"), "--text-file", path.string()});
    fs::remove(path);
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(json::parse(run.out).get<std::vector<int32_t>>(),
              reference_tokenizer("llama3").encode(text));
}

TEST(TokenizerCli, DetokenizePrintsTheTextExactly) {
    const Tokenizer& qwen = reference_tokenizer("qwen3");
    const std::string text = "<|im_start|>user\n  Hi \xf0\x9f\x98\x80<|im_end|>\n";
    std::string ids;
    for (int32_t id : qwen.encode(text))
        ids.append(ids.empty() ? "" : ",").append(std::to_string(id));
    CliRun run = run_fourbit({"detokenize", "--tokenizer", tokenizer_path("qwen3"), "--ids", ids});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, text);
    run = run_fourbit({"detokenize", "--tokenizer", tokenizer_path("qwen3"), "--ids", ids,
                       "--skip-special-tokens"});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    EXPECT_EQ(run.out, "user\n  Hi \xf0\x9f\x98\x80\n");
}

TEST(TokenizerCli, BadInputFailsCleanly) {
    struct Case {
        std::vector<std::string> args;
        std::string needle;
    };
    const std::string qwen = tokenizer_path("qwen3");
    for (const Case& c : std::vector<Case>{
             {{"tokenize", "--tokenizer", "/nonexistent.json", "--text", "x"}, "/nonexistent.json"},
             {{"tokenize", "--tokenizer", qwen}, "--text"},
             {{"tokenize", "--tokenizer", qwen, "--text-file", "/nonexistent.txt"},
              "/nonexistent.txt"},
             {{"detokenize", "--tokenizer", qwen, "--ids", "1,x"}, "--ids"},
             {{"detokenize", "--tokenizer", qwen, "--ids", "99999999"}, "99999999"},
         }) {
        const CliRun run = run_fourbit(c.args);
        EXPECT_NE(run.exit_code, 0) << c.args[0];
        EXPECT_LT(run.exit_code, 128) << "crashed: " << run.err;
        EXPECT_NE(run.err.find(c.needle), std::string::npos) << run.err;
    }
}

}  // namespace
}  // namespace fourbit
