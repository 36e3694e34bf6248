// Prompt prose (real text, sized slices, unique suffixes) and the agentic suite's data and
// tool-call checks.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bench/agentic_suite.h"
#include "bench/prose_prompts.h"
#include "util/error.h"

namespace fourbit::bench {
namespace {

using nlohmann::json;

TEST(Prose, MarkdownLosesCodeTablesAndHeadings) {
    const std::string md =
        "# Title\nFirst line\nof a paragraph.\n\n| a | b |\n|---|---|\n```cpp\nint x;\n```\n"
        "    indented code\n- a list item\n";
    EXPECT_EQ(markdown_prose(md), "First line of a paragraph. - a list item");
}

TEST(Prose, EmbeddedCorpusIsLongEnglishText) {
    const std::string& prose = embedded_prose();
    EXPECT_GT(prose.size(), 50000u);
    EXPECT_EQ(prose.find("```"), std::string::npos);
    EXPECT_NE(prose.find(" the "), std::string::npos);
}

TEST(Prose, SlicesAreSizedAndStartAndEndOnWords) {
    ProseSource source(embedded_prose(), 7);
    for (size_t chars : {1u, 100u, 5000u, 400000u}) {  // the last wraps around the corpus
        const std::string text = source.slice(chars);
        EXPECT_GE(text.size() + 1, chars);
        EXPECT_LE(text.size(), chars + 32);
        EXPECT_NE(text.front(), ' ');
        EXPECT_NE(text.back(), ' ');
    }
    EXPECT_TRUE(source.slice(0).empty());
    // The same seed repeats; another seed picks other text.
    EXPECT_EQ(ProseSource(embedded_prose(), 3).slice(300),
              ProseSource(embedded_prose(), 3).slice(300));
    EXPECT_NE(ProseSource(embedded_prose(), 3).slice(300),
              ProseSource(embedded_prose(), 4).slice(300));
    // Calibration probes are nested prefixes.
    EXPECT_EQ(source.prefix(4000).substr(0, 900), source.prefix(1000).substr(0, 900));
    EXPECT_NE(source.unique_suffix(), source.unique_suffix());
}

TEST(Prose, CalibrationConvertsTokensToCharacters) {
    PromptCalibration c;
    c.tokens_per_char = 0.25;
    EXPECT_EQ(c.chars_for(100), 400u);
    EXPECT_EQ(c.chars_for(0), 0u);
}

json suite() { return json::parse(embedded_agentic_suite()); }

ToolCall call(const std::string& name, const std::string& arguments) {
    ToolCall out;
    out.id = "call_1";
    out.name = name;
    out.arguments = arguments;
    return out;
}

TEST(AgenticSuite, TheShippedSuiteIsValidAndHasTheReleaseShape) {
    const json s = suite();
    EXPECT_NO_THROW(validate_suite(s, "agentic"));
    ASSERT_EQ(s["tasks"].size(), 12u);
    int code = 0, tool = 0, trap = 0, parallel = 0, multi = 0;
    for (const json& task : s["tasks"]) {
        const std::string category = task.value("category", "");
        code += category == "code";
        if (category != "tool") continue;
        tool += 1;
        const json& expected = task["expected_calls"];
        trap += expected.empty();
        parallel += expected.size() == 3 && expected[0] == expected[1];
        multi += task["tools"].size() == 3 && task.value("max_turns", 1) >= 3 &&
                 task["tool_results"].size() == 3;
    }
    EXPECT_GE(code, 3);
    EXPECT_EQ(tool, 4);
    EXPECT_EQ(trap, 1);
    EXPECT_EQ(parallel, 1);
    EXPECT_EQ(multi, 1);
}

TEST(AgenticSuite, BadSuitesNameTheTaskAndField) {
    json s = suite();
    s["tasks"][4]["tools"] = {"no_such_tool"};
    try {
        validate_suite(s, "my.json");
        FAIL() << "accepted an unknown tool";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("my.json: tasks[4] (weather_one_tool)"),
                  std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("no_such_tool"), std::string::npos);
    }
    s = suite();
    s["tasks"][0].erase("messages");
    EXPECT_THROW(validate_suite(s, "x"), Error);
    s = suite();
    s["tasks"][0]["max_tokens"] = 0;
    EXPECT_THROW(validate_suite(s, "x"), Error);
    EXPECT_THROW(validate_suite(json::array(), "x"), Error);
}

TEST(AgenticSuite, ToolCallChecks) {
    const json offered = {{"get_weather", suite()["tools"]["get_weather"]}};
    ToolCall good = call("get_weather", R"({"city": "Lisbon"})");
    check_tool_call(good, offered);
    EXPECT_TRUE(good.valid) << good.problem;

    ToolCall missing = call("get_weather", R"({"unit": "celsius"})");
    check_tool_call(missing, offered);
    EXPECT_FALSE(missing.valid);
    EXPECT_EQ(missing.problem, "missing required argument city");

    ToolCall not_json = call("get_weather", R"({"city": "Lis)");
    check_tool_call(not_json, offered);
    EXPECT_FALSE(not_json.valid);

    ToolCall unknown = call("get_stock_price", R"({"ticker": "X"})");
    check_tool_call(unknown, offered);
    EXPECT_FALSE(unknown.valid);
    EXPECT_NE(unknown.problem.find("not offered"), std::string::npos);
}

}  // namespace
}  // namespace fourbit::bench
