// `fourbit parse` through the real binary: the message JSON, the streamed deltas, bad flags.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "support/temp_dir.h"
#include "text/parser_test_helpers.h"

namespace fourbit::parser_test {
namespace {

namespace fs = std::filesystem;

struct CommandRun {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

CommandRun run_fourbit(const std::string& arguments, bool with_stderr) {
    const std::string command = std::string("'") + FOURBIT_BINARY + "' " + arguments +
                                (with_stderr ? " 2>&1" : " 2>/dev/null");
    CommandRun run;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return run;
    std::array<char, 4096> buffer{};
    size_t n = 0;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
        run.output.append(buffer.data(), n);
    const int status = pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

class ParseCli : public test_support::TempDirTest {
protected:
    // Writes `bytes` to `name` in the test's directory; returns its path quoted for the shell.
    std::string write(const std::string& name, const std::string& bytes) {
        const std::string file = path(name);
        std::ofstream(file, std::ios::binary) << bytes;
        return fmt::format("'{}'", file);
    }
};

TEST_F(ParseCli, PrintsTheAssistantMessage) {
    const GoldenCase& golden = golden_case("content_before_call");
    // A request body with a `tools` field, as the server receives it.
    const std::string tools =
        write("request.json",
              nlohmann::json{{"model", "m"}, {"tools", golden.options.tool_schemas}}.dump());
    const std::string text = write("out.txt", golden.text);
    const CommandRun run = run_fourbit("parse --tools " + tools + " --text-file " + text, false);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const nlohmann::json message = nlohmann::json::parse(run.output);
    EXPECT_EQ(message.at("role"), "assistant");
    EXPECT_EQ(message.at("content"), "Let me check.");
    EXPECT_EQ(message.at("reasoning_content"), "R");
    ASSERT_EQ(message.at("tool_calls").size(), 1u);
    const nlohmann::json& call = message.at("tool_calls")[0];
    EXPECT_EQ(call.at("type"), "function");
    EXPECT_EQ(call.at("function").at("name"), "get_weather");
    EXPECT_EQ(call.at("function").at("arguments"), "{\"location\": \"Oslo\", \"days\": 3}");
    EXPECT_EQ(call.at("id").get<std::string>().rfind("call_", 0), 0u);
}

TEST_F(ParseCli, StreamsDeltasThatAssembleToTheMessage) {
    const GoldenCase& golden = golden_case("parallel_invokes_in_one_block");
    const std::string tools = write("tools.json", golden.options.tool_schemas.dump());
    const std::string text = write("out.txt", golden.text);
    const CommandRun run = run_fourbit(
        "parse --tools " + tools + " --text-file " + text + " --stream-chunk-bytes 5", false);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    std::string reasoning;
    std::vector<std::string> arguments;
    std::istringstream lines(run.output);
    for (std::string line; std::getline(lines, line);) {
        const nlohmann::json delta = nlohmann::json::parse(line);
        reasoning += delta.value("reasoning_content", "");
        for (const nlohmann::json& call : delta.value("tool_calls", nlohmann::json::array())) {
            const size_t index = call.at("index");
            if (index == arguments.size()) arguments.emplace_back();
            arguments.at(index) += call.at("function").at("arguments").get<std::string>();
        }
    }
    EXPECT_EQ(reasoning, "R");
    ASSERT_EQ(arguments.size(), 2u);
    EXPECT_EQ(arguments[1], golden.expected.at("tool_calls")[1].at("arguments").get<std::string>());
}

TEST_F(ParseCli, UnknownParserAndBadToolsAreCleanErrors) {
    const std::string text = write("out.txt", "hello");
    CommandRun run = run_fourbit("parse --reasoning-parser qwen3 --text-file " + text, true);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.output.find("qwen3"), std::string::npos) << run.output;

    const std::string tools = write("tools.json", R"({"model": "m"})");
    run = run_fourbit("parse --tools " + tools + " --text-file " + text, true);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.output.find("tools.json"), std::string::npos) << run.output;

    run = run_fourbit("parse --text-file '" + (dir_ / "missing.txt").string() + "'", true);
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_NE(run.output.find("missing.txt"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace fourbit::parser_test
