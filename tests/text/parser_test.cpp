// The reasoning and tool-call parsers: every golden case whole, then streamed over every split
// point, random 3-way splits and byte by byte (the assembled deltas must equal the whole parse),
// truncation at every byte, the exact shape of the deltas, UTF-8 and bad options.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <regex>

#include "text/message_parser.h"
#include "text/parser_test_helpers.h"
#include "util/error.h"

namespace fourbit::parser_test {
namespace {

TEST(ParserGolden, EnoughCases) { EXPECT_GE(golden_cases().size(), 30u); }

TEST(ParserGolden, WholeTextGivesTheExpectedMessage) {
    const std::regex id_form("call_[0-9a-f]{24}");
    for (const GoldenCase& golden : golden_cases()) {
        SCOPED_TRACE(golden.name + ": " + golden.note);
        const ParsedMessage actual = parse_message(golden.text, golden.options);
        EXPECT_EQ(difference(expected_message(golden, actual), actual), "");
        for (const ToolCall& call : actual.tool_calls) {
            EXPECT_TRUE(std::regex_match(call.id, id_form)) << call.id;
        }
    }
}

TEST(ParserGolden, ArgumentsUsePythonJsonSpacing) {
    // Every expected arguments text is what json.dumps(json.loads(text)) prints: compact
    // separators nowhere, ", " and ": " everywhere (checked structurally with nlohmann).
    for (const GoldenCase& golden : golden_cases()) {
        for (const nlohmann::json& call : golden.expected.at("tool_calls")) {
            const std::string arguments = call.at("arguments");
            const nlohmann::json parsed = nlohmann::json::parse(arguments);
            EXPECT_TRUE(parsed.is_object()) << golden.name;
        }
    }
}

// The streamed result for `chunks` must equal the whole parse and keep the delta contract.
void expect_stream_matches(const GoldenCase& golden, const ParsedMessage& whole,
                           const std::vector<size_t>& cuts) {
    const StreamResult streamed = stream(split_at(golden.text, cuts), golden.options);
    const std::string diff = difference(whole, streamed.message);
    if (!diff.empty() || !streamed.contract_error.empty()) {
        std::string where;
        for (size_t cut : cuts) where += std::to_string(cut) + " ";
        ADD_FAILURE() << golden.name << " split at [ " << where << "] of " << printable(golden.text)
                      << "\n"
                      << diff << streamed.contract_error;
    }
}

TEST(ParserStreaming, EverySplitPointEqualsTheWholeParse) {
    for (const GoldenCase& golden : golden_cases()) {
        const ParsedMessage whole = parse_message(golden.text, golden.options);
        for (size_t cut = 0; cut <= golden.text.size(); ++cut) {
            expect_stream_matches(golden, whole, {cut});
        }
    }
}

TEST(ParserStreaming, RandomThreeWaySplitsEqualTheWholeParse) {
    std::mt19937 random(12345);
    for (const GoldenCase& golden : golden_cases()) {
        const ParsedMessage whole = parse_message(golden.text, golden.options);
        std::uniform_int_distribution<size_t> position(0, golden.text.size());
        for (int trial = 0; trial < 300; ++trial) {
            size_t a = position(random), b = position(random);
            if (a > b) std::swap(a, b);
            expect_stream_matches(golden, whole, {a, b});
        }
    }
}

TEST(ParserStreaming, ByteByByteEqualsTheWholeParse) {
    for (const GoldenCase& golden : golden_cases()) {
        const ParsedMessage whole = parse_message(golden.text, golden.options);
        std::vector<size_t> cuts;
        for (size_t i = 1; i < golden.text.size(); ++i) cuts.push_back(i);
        expect_stream_matches(golden, whole, cuts);
    }
}

size_t count(std::string_view text, std::string_view needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string_view::npos;
         at = text.find(needle, at + 1)) {
        ++n;
    }
    return n;
}

TEST(ParserTruncation, EveryPrefixKeepsOnlyFinishedCalls) {
    // Well-formed outputs cut at every byte: the calls are those whose </invoke> arrived,
    // equal to the full parse's; truncation is flagged exactly inside a block; the stream of
    // the prefix agrees and never closes the unfinished call.
    for (const char* name :
         {"one_call", "content_before_call", "parallel_invokes_in_one_block", "two_blocks",
          "multiline_value_with_xml_characters", "non_ascii_everywhere", "zero_argument_call",
          "append_think_with_tool_call", "json_value_types"}) {
        const GoldenCase& golden = golden_case(name);
        const ParsedMessage full = parse_message(golden.text, golden.options);
        std::mt19937 random(99);
        for (size_t length = 0; length <= golden.text.size(); ++length) {
            const std::string_view prefix = std::string_view(golden.text).substr(0, length);
            SCOPED_TRACE(fmt::format("{} cut at {}: {}", name, length, printable(prefix)));
            const ParsedMessage cut = parse_message(prefix, golden.options);
            ASSERT_EQ(cut.tool_calls.size(), count(prefix, "</invoke>"));
            for (size_t i = 0; i < cut.tool_calls.size(); ++i) {
                EXPECT_EQ(cut.tool_calls[i].name, full.tool_calls[i].name);
                EXPECT_EQ(cut.tool_calls[i].arguments, full.tool_calls[i].arguments);
            }
            EXPECT_EQ(cut.truncated_tool_call,
                      count(prefix, "<minimax:tool_call>") > count(prefix, "</minimax:tool_call>"));
            std::vector<size_t> cuts;
            for (size_t i = 1; i < length; ++i) cuts.push_back(i);
            for (const auto& chunks : {split_at(prefix, {}), split_at(prefix, cuts),
                                       split_at(prefix, {length / 3, length / 2})}) {
                const StreamResult streamed = stream(chunks, golden.options);
                EXPECT_EQ(difference(cut, streamed.message), "");
                EXPECT_EQ(streamed.contract_error, "");
            }
        }
    }
}

TEST(ParserTruncation, TheUnfinishedCallIsAnnouncedButNeverClosed) {
    const GoldenCase& golden = golden_case("truncated_inside_value");
    const StreamResult streamed = stream({golden.text}, golden.options);
    EXPECT_EQ(streamed.unclosed_calls, 1);
    EXPECT_TRUE(streamed.message.truncated_tool_call);
    EXPECT_TRUE(streamed.message.tool_calls.empty());
}

// The documented delta shape: announcement, then one fragment per parameter, then "}".
TEST(ParserStreaming, DeltasComeOneParameterAtATime) {
    ParserOptions options = golden_case("one_call").options;
    StreamingMessageParser parser(options);
    MessageDelta delta = parser.push("Need the weather.\n</think>\n\n<minimax:tool_call>\n");
    EXPECT_EQ(delta.reasoning_content, "Need the weather.");
    EXPECT_EQ(delta.content, "");
    EXPECT_TRUE(delta.tool_calls.empty());

    delta = parser.push("<invoke name=\"get_weather\">\n<parameter name=\"loc");
    ASSERT_EQ(delta.tool_calls.size(), 1u);
    EXPECT_EQ(delta.tool_calls[0].index, 0);
    EXPECT_EQ(delta.tool_calls[0].name, "get_weather");
    EXPECT_TRUE(delta.tool_calls[0].id.has_value());
    EXPECT_EQ(delta.tool_calls[0].arguments, "");

    delta = parser.push("ation\">San Francisco, CA</parameter>\n");
    ASSERT_EQ(delta.tool_calls.size(), 1u);
    EXPECT_FALSE(delta.tool_calls[0].id.has_value());
    EXPECT_FALSE(delta.tool_calls[0].name.has_value());
    EXPECT_EQ(delta.tool_calls[0].arguments, "{\"location\": \"San Francisco, CA\"");

    delta = parser.push("<parameter name=\"unit\">celsius</parameter>\n</invo");
    ASSERT_EQ(delta.tool_calls.size(), 1u);
    EXPECT_EQ(delta.tool_calls[0].arguments, ", \"unit\": \"celsius\"");

    delta = parser.push("ke>\n<invoke name=\"list_files\">\n</invoke>\n</minimax:tool_call>");
    ASSERT_EQ(delta.tool_calls.size(), 2u);
    EXPECT_EQ(delta.tool_calls[0].index, 0);
    EXPECT_EQ(delta.tool_calls[0].arguments, "}");
    EXPECT_EQ(delta.tool_calls[1].index, 1);
    EXPECT_EQ(delta.tool_calls[1].name, "list_files");
    EXPECT_EQ(delta.tool_calls[1].arguments, "{}");
    EXPECT_TRUE(parser.finish().empty());
    EXPECT_FALSE(parser.truncated_tool_call());
}

TEST(ParserStreaming, APartialTagIsHeldBackNotFlushed) {
    ParserOptions options;
    options.prompt_opens_think = false;
    StreamingMessageParser parser(options);
    EXPECT_EQ(parser.push("Hello <minimax:to").content, "Hello ");
    EXPECT_EQ(parser.push("ol").content, "");
    EXPECT_EQ(parser.push("s are here").content, "<minimax:tools are here");
    EXPECT_EQ(parser.push(" <").content, " ");
    EXPECT_EQ(parser.finish().content, "<");
}

TEST(ParserStreaming, ExplicitThinkIsDecidedBeforeAnythingIsEmitted) {
    ParserOptions options;
    options.reasoning = ReasoningParser::minimax_m2_append_think;
    StreamingMessageParser parser(options);
    EXPECT_TRUE(parser.push("\n<thi").empty());
    EXPECT_EQ(parser.push("nk>\nR").content, "<think>\nR");
    EXPECT_EQ(parser.push("</think>").content, "</think>");
    EXPECT_TRUE(parser.finish().empty());
}

TEST(ParserStreaming, FormatNewlinesWaitForTheNextCharacter) {
    ParserOptions options;
    StreamingMessageParser parser(options);
    EXPECT_EQ(parser.push("R\n").reasoning_content, "R");
    EXPECT_EQ(parser.push("\nS\n").reasoning_content, "\n\nS");
    MessageDelta delta = parser.push("</think>\n\nA\n");
    EXPECT_EQ(delta.reasoning_content, "");
    EXPECT_EQ(delta.content, "A");
    EXPECT_EQ(parser.finish().content, "\n");  // not followed by a tool call: payload
}

TEST(ParserStreaming, LongRunsArriveInLinearTime) {
    // A degenerate model can emit hundreds of thousands of newlines or '<' one token at a time;
    // nothing may be rescanned per push (quadratic would take minutes here).
    const auto start = std::chrono::steady_clock::now();
    for (const char* piece : {"\n", " ", "<", "a"}) {
        for (bool append : {false, true}) {
            ParserOptions options;
            if (append) options.reasoning = ReasoningParser::minimax_m2_append_think;
            StreamingMessageParser parser(options);
            for (int i = 0; i < 100000; ++i) parser.push(piece);
            parser.push("</think><minimax:tool_call><invoke name=\"f\"><parameter name=\"k\">");
            for (int i = 0; i < 100000; ++i) parser.push(piece);
            parser.finish();
        }
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
              10.0);
}

TEST(ParserUtf8, InvalidBytesBecomeReplacementCharacters) {
    ParserOptions options;
    options.tool_call_ids = seeded_tool_call_ids(1);
    const std::string text =
        "R\xe2\x82</think>Gr\xc3\xbc\xc3\x9f"
        "e \xf0\x9f\x8c\xa6 \xff\xc3 end\xe2\x82\xac\xe2\x82";
    const ParsedMessage message = parse_message(text, options);
    EXPECT_EQ(message.reasoning_content, "R\xef\xbf\xbd");
    EXPECT_EQ(message.content,
              "Gr\xc3\xbc\xc3\x9f"
              "e \xf0\x9f\x8c\xa6 \xef\xbf\xbd\xef\xbf\xbd end\xe2\x82\xac"
              "\xef\xbf\xbd");
    GoldenCase golden{"utf8", "", text, options, {}};
    for (size_t cut = 0; cut <= text.size(); ++cut) expect_stream_matches(golden, message, {cut});
    std::vector<size_t> cuts;
    for (size_t i = 1; i < text.size(); ++i) cuts.push_back(i);
    expect_stream_matches(golden, message, cuts);
}

TEST(ParserUtf8, InvalidBytesInNamesAndValuesBecomeReplacementCharacters) {
    ParserOptions options;
    const ParsedMessage message = parse_message(
        "</think><minimax:tool_call><invoke name=\"f\xff\"><parameter name=\"k\xfe\">v\xc3"
        "</parameter></invoke></minimax:tool_call>",
        options);
    ASSERT_EQ(message.tool_calls.size(), 1u);
    EXPECT_EQ(message.tool_calls[0].name, "f\xef\xbf\xbd");
    EXPECT_EQ(message.tool_calls[0].arguments, "{\"k\xef\xbf\xbd\": \"v\xef\xbf\xbd\"}");
}

TEST(ParserIds, SeededSourcesRepeatRandomOnesDoNot) {
    ToolCallIdSource a = seeded_tool_call_ids(3), b = seeded_tool_call_ids(3);
    EXPECT_EQ(a(), b());
    EXPECT_EQ(a(), b());
    ToolCallIdSource random = random_tool_call_ids();
    const std::string first = random(), second = random();
    EXPECT_NE(first, second);
    EXPECT_TRUE(std::regex_match(first, std::regex("call_[0-9a-f]{24}")));
}

TEST(ParserIds, StreamingAndWholeParseGiveTheSameIds) {
    const GoldenCase& golden = golden_case("parallel_invokes_in_one_block");
    const ParsedMessage whole = parse_message(golden.text, golden.options);
    const StreamResult streamed = stream({golden.text}, golden.options);
    ASSERT_EQ(whole.tool_calls.size(), 2u);
    EXPECT_NE(whole.tool_calls[0].id, whole.tool_calls[1].id);
    EXPECT_EQ(difference(whole, streamed.message), "");
}

TEST(ParserOptions, NamesRoundTripAndUnknownNamesAreErrors) {
    for (auto parser : {ReasoningParser::none, ReasoningParser::minimax_m2,
                        ReasoningParser::minimax_m2_append_think}) {
        EXPECT_EQ(reasoning_parser_from_name(name_of(parser)), parser);
    }
    for (auto parser : {ToolCallParser::none, ToolCallParser::minimax_m2}) {
        EXPECT_EQ(tool_call_parser_from_name(name_of(parser)), parser);
    }
    EXPECT_THROW(reasoning_parser_from_name("deepseek_r1"), Error);
    EXPECT_THROW(tool_call_parser_from_name("hermes"), Error);
}

TEST(ParserOptions, ToolsMustBeAnArray) {
    ParserOptions options;
    options.tool_schemas = {{"type", "function"}};
    EXPECT_THROW(parse_message("x", options), Error);
    EXPECT_THROW(StreamingMessageParser{options}, Error);
}

TEST(ParserOptions, BareToolDefinitionsAreAccepted) {
    // The MiniMax guide's {name, parameters} form, beside the OpenAI nesting.
    ParserOptions options;
    options.tool_schemas = nlohmann::json::parse(
        R"([{"name": "f", "parameters": {"properties": {"n": {"type": "integer"}}}}])");
    const ParsedMessage message = parse_message(
        "</think><minimax:tool_call><invoke name=\"f\"><parameter name=\"n\">4</parameter>"
        "</invoke></minimax:tool_call>",
        options);
    ASSERT_EQ(message.tool_calls.size(), 1u);
    EXPECT_EQ(message.tool_calls[0].arguments, "{\"n\": 4}");
}

TEST(ParserJson, MessageAndDeltaInOpenAiForm) {
    const GoldenCase& golden = golden_case("content_before_call");
    const ParsedMessage message = parse_message(golden.text, golden.options);
    const nlohmann::json json = message.to_openai_json();
    EXPECT_EQ(json.at("role"), "assistant");
    EXPECT_EQ(json.at("content"), "Let me check.");
    EXPECT_EQ(json.at("reasoning_content"), "R");
    ASSERT_EQ(json.at("tool_calls").size(), 1u);
    const nlohmann::json& call = json.at("tool_calls")[0];
    EXPECT_EQ(call.at("id"), message.tool_calls[0].id);
    EXPECT_EQ(call.at("type"), "function");
    EXPECT_EQ(call.at("function").at("name"), "get_weather");
    EXPECT_EQ(call.at("function").at("arguments"), "{\"location\": \"Oslo\", \"days\": 3}");

    const nlohmann::json plain = parse_message("R</think>", golden.options).to_openai_json();
    EXPECT_TRUE(plain.at("content").is_null());
    EXPECT_FALSE(plain.contains("tool_calls"));

    MessageDelta delta;
    delta.content = "x";
    delta.tool_calls.push_back({0, "call_1", "f", ""});
    delta.tool_calls.push_back({1, std::nullopt, std::nullopt, "{}"});
    const nlohmann::json chunk = delta.to_openai_json();
    EXPECT_EQ(chunk.at("content"), "x");
    EXPECT_FALSE(chunk.contains("reasoning_content"));
    EXPECT_EQ(chunk.at("tool_calls")[0].at("type"), "function");
    EXPECT_EQ(chunk.at("tool_calls")[0].at("function").at("name"), "f");
    EXPECT_FALSE(chunk.at("tool_calls")[1].contains("id"));
    EXPECT_EQ(chunk.at("tool_calls")[1].at("function").at("arguments"), "{}");
}

}  // namespace
}  // namespace fourbit::parser_test
