// The per-choice output pipeline: stop strings across any split, and tokens -> deltas and
// messages through detokenizer, stop strings and parsers, including forced tool calls and the
// finish_reason rules.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/choice_output.h"
#include "server/prompt.h"
#include "server/stop_strings.h"
#include "server/test_tokenizer.h"

namespace fourbit {
namespace {

// The text `pieces` give through a matcher, and whether it matched.
std::pair<std::string, bool> run_matcher(const std::vector<std::string>& stops,
                                         const std::vector<std::string_view>& pieces,
                                         bool include_stop = false) {
    StopStringMatcher matcher(stops, include_stop);
    std::string out;
    for (std::string_view piece : pieces) out += matcher.push(piece).text;
    out += matcher.flush();
    return {out, matcher.matched()};
}

TEST(ServerStopStrings, CutsBeforeTheFirstMatch) {
    EXPECT_EQ(run_matcher({"END"}, {"abc END def"}), std::make_pair(std::string("abc "), true));
    EXPECT_EQ(run_matcher({"END"}, {"abc END def"}, true),
              std::make_pair(std::string("abc END"), true));
    EXPECT_EQ(run_matcher({"END"}, {"abc"}), std::make_pair(std::string("abc"), false));
    EXPECT_EQ(run_matcher({}, {"abc"}), std::make_pair(std::string("abc"), false));
    EXPECT_EQ(run_matcher({""}, {"abc"}), std::make_pair(std::string("abc"), false));
    // The match that starts first wins; at one start, the shorter one.
    EXPECT_EQ(run_matcher({"b", "abc"}, {"xabc"}).first, "x");
    EXPECT_EQ(run_matcher({"abc", "ab"}, {"xabc"}, true).first, "xab");
}

TEST(ServerStopStrings, HoldsBackOnlyWhatCouldStartAStopString) {
    StopStringMatcher matcher({"END"});
    EXPECT_EQ(matcher.push("abcE").text, "abc");
    EXPECT_EQ(matcher.push("N").text, "");
    EXPECT_EQ(matcher.push("x").text, "ENx");
    EXPECT_EQ(matcher.push("plain text").text, "plain text") << "ordinary text is never delayed";
    EXPECT_EQ(matcher.push("EN").text, "");
    const StopStringMatcher::Result last = matcher.push("D and more");
    EXPECT_TRUE(last.matched);
    EXPECT_EQ(last.text, "");
    EXPECT_EQ(matcher.push("ignored").text, "") << "nothing passes after a match";
    EXPECT_EQ(matcher.flush(), "");
}

TEST(ServerStopStrings, EverySplitGivesTheWholeTextResult) {
    const std::string text = "the stop is <|end|> or maybe\nSTOP, é-STOP";
    const std::vector<std::vector<std::string>> stop_sets = {
        {"<|end|>"}, {"STOP"}, {"\nS", "maybe"}, {"é-"}, {"never"}, {"e", "the"}};
    for (const auto& stops : stop_sets) {
        const auto whole = run_matcher(stops, {text});
        for (size_t i = 0; i <= text.size(); ++i) {
            for (size_t j = i; j <= text.size(); ++j) {
                const std::string_view t(text);
                EXPECT_EQ(run_matcher(stops, {t.substr(0, i), t.substr(i, j - i), t.substr(j)}),
                          whole)
                    << stops[0] << " split at " << i << ", " << j;
            }
        }
    }
}

ChoiceOutputOptions chat_options() {
    ChoiceOutputOptions options;
    options.parse = true;
    options.parser.reasoning = ReasoningParser::minimax_m2;
    options.parser.tools = ToolCallParser::minimax_m2;
    options.parser.tool_schemas = nlohmann::json::parse(R"([
        {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
         "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_weather", "parameters": {}}}])");
    options.parser.prompt_opens_think = true;
    options.parser.tool_call_ids = seeded_tool_call_ids(1);
    return options;
}

// Pushes the tokens of `text` one by one, then finishes; returns every delta (the last one from
// finish()).
std::vector<MessageDelta> run_tokens(ChoiceOutput& output, const std::string& text) {
    std::vector<MessageDelta> deltas;
    for (int32_t id : test_tokenizer().encode(text)) {
        if (output.stopped()) break;
        deltas.push_back(output.push_token(id));
    }
    deltas.push_back(output.finish());
    return deltas;
}

MessageDelta joined(std::vector<MessageDelta> deltas) {
    MessageDelta all;
    for (MessageDelta& delta : deltas) merge_delta(all, std::move(delta));
    return all;
}

TEST(ServerChoiceOutput, PlainTextOneDeltaPerToken) {
    ChoiceOutputOptions options;
    options.parse = false;
    ChoiceOutput output(test_tokenizer(), options);
    const std::string text = "Plain text, with ünïcode 世界 and <think> tags kept.";
    const std::vector<MessageDelta> deltas = run_tokens(output, text);
    EXPECT_EQ(deltas.size(), test_tokenizer().encode(text).size() + 1);
    EXPECT_EQ(joined(deltas).content, text);
    EXPECT_EQ(output.text(), text);
    EXPECT_EQ(output.message().content, text);
    EXPECT_EQ(output.n_tokens(), static_cast<int64_t>(test_tokenizer().encode(text).size()));
    EXPECT_EQ(output.finish_reason("length"), "length");
    EXPECT_EQ(output.finish_reason("stop"), "stop");
}

TEST(ServerChoiceOutput, AnIdWithNoTokenAddsNoTextButCounts) {
    // Models pad their vocabulary past the tokenizer's tokens and can sample such an id.
    ChoiceOutputOptions options;
    options.parse = false;
    ChoiceOutput output(test_tokenizer(), options);
    const std::vector<int32_t> ids = test_tokenizer().encode("ab");
    const int32_t no_token = static_cast<int32_t>(test_tokenizer().vocab_size()) + 7;
    ASSERT_FALSE(test_tokenizer().contains(no_token));
    output.push_token(ids[0]);
    EXPECT_TRUE(output.push_token(no_token).content.empty());
    for (size_t i = 1; i < ids.size(); ++i) output.push_token(ids[i]);
    output.finish();
    EXPECT_EQ(output.text(), "ab");
    EXPECT_EQ(output.n_tokens(), static_cast<int64_t>(ids.size()) + 1);
}

TEST(ServerChoiceOutput, StopStringEndsTheOutput) {
    ChoiceOutputOptions options;
    options.parse = false;
    options.stop = {"world"};
    ChoiceOutput output(test_tokenizer(), options);
    const std::vector<MessageDelta> deltas = run_tokens(output, "Hello world, and more text after");
    EXPECT_TRUE(output.stopped());
    EXPECT_EQ(joined(deltas).content, "Hello ");
    EXPECT_EQ(output.text(), "Hello ");
    EXPECT_LT(
        output.n_tokens(),
        static_cast<int64_t>(test_tokenizer().encode("Hello world, and more text after").size()));
    EXPECT_EQ(output.finish_reason("cancelled"), "stop") << "cancelled by us at the stop string";
    EXPECT_EQ(output.finish_reason("length"), "stop");
}

TEST(ServerChoiceOutput, ReasoningAndContent) {
    ChoiceOutput output(test_tokenizer(), chat_options());
    const MessageDelta all =
        joined(run_tokens(output, "Let me think.\n</think>\n\nThe answer is 4."));
    EXPECT_EQ(all.reasoning_content, "Let me think.");
    EXPECT_EQ(all.content, "The answer is 4.");
    const ParsedMessage message = output.message();
    EXPECT_EQ(message.reasoning_content, "Let me think.");
    EXPECT_EQ(message.content, "The answer is 4.");
    EXPECT_EQ(output.finish_reason("stop"), "stop");
}

TEST(ServerChoiceOutput, ForcedNamedCallCompletes) {
    ChoiceOutputOptions options = chat_options();
    options.forced_output = forced_tool_call_text({ToolChoiceKind::named, "add"}, true);
    ChoiceOutput output(test_tokenizer(), options);
    const std::vector<MessageDelta> deltas =
        run_tokens(output,
                   "<parameter name=\"a\">5</parameter>\n<parameter "
                   "name=\"b\">x</parameter>\n</invoke>\n</minimax:tool_call>");
    // The forced text's announcement (id and name) arrives with the first token, not before.
    ASSERT_FALSE(deltas.front().tool_calls.empty());
    EXPECT_EQ(deltas.front().tool_calls[0].name, "add");
    EXPECT_TRUE(deltas.front().tool_calls[0].id.has_value());
    const MessageDelta all = joined(deltas);
    ASSERT_EQ(all.tool_calls.size(), 1u);
    EXPECT_EQ(all.tool_calls[0].arguments, R"({"a": 5, "b": "x"})");
    EXPECT_TRUE(all.content.empty());
    EXPECT_TRUE(all.reasoning_content.empty());
    const ParsedMessage message = output.message();
    ASSERT_EQ(message.tool_calls.size(), 1u);
    EXPECT_EQ(message.tool_calls[0].name, "add");
    EXPECT_EQ(message.tool_calls[0].arguments, R"({"a": 5, "b": "x"})");
    EXPECT_FALSE(message.truncated_tool_call);
    EXPECT_EQ(output.finish_reason("stop"), "tool_calls");
    EXPECT_EQ(output.finish_reason("length"), "length")
        << "the output was cut, even if after the call";
}

TEST(ServerChoiceOutput, ForcedCallCutOffIsNoToolCall) {
    ChoiceOutputOptions options = chat_options();
    options.forced_output = forced_tool_call_text({ToolChoiceKind::named, "add"}, true);
    ChoiceOutput output(test_tokenizer(), options);
    run_tokens(output, "<parameter name=\"a\">5</parameter>\n<parameter name=\"b\">unfinis");
    const ParsedMessage message = output.message();
    EXPECT_TRUE(message.tool_calls.empty());
    EXPECT_TRUE(message.truncated_tool_call);
    EXPECT_EQ(output.finish_reason("length"), "length");
    EXPECT_EQ(output.finish_reason("stop"), "stop") << "an end-of-turn inside a call is no call";
}

TEST(ServerChoiceOutput, RequiredLetsTheModelNameTheFunction) {
    ChoiceOutputOptions options = chat_options();
    options.forced_output = forced_tool_call_text({ToolChoiceKind::required, ""}, true);
    ChoiceOutput output(test_tokenizer(), options);
    run_tokens(output,
               "get_weather\">\n<parameter "
               "name=\"city\">Paris</parameter>\n</invoke>\n</minimax:tool_call>");
    const ParsedMessage message = output.message();
    ASSERT_EQ(message.tool_calls.size(), 1u);
    EXPECT_EQ(message.tool_calls[0].name, "get_weather");
    EXPECT_EQ(message.tool_calls[0].arguments, R"({"city": "Paris"})");
    EXPECT_EQ(output.finish_reason("stop"), "tool_calls");
}

TEST(ServerChoiceOutput, ParallelToolCallsFalseKeepsTheFirst) {
    const std::string text =
        "ok\n</think>\n\n<minimax:tool_call>\n<invoke name=\"add\">\n<parameter "
        "name=\"a\">1</parameter>\n"
        "</invoke>\n<invoke name=\"add\">\n<parameter "
        "name=\"a\">2</parameter>\n</invoke>\n</minimax:tool_call>";
    ChoiceOutputOptions options = chat_options();
    ChoiceOutput parallel(test_tokenizer(), options);
    EXPECT_EQ(joined(run_tokens(parallel, text)).tool_calls.size(), 2u);
    EXPECT_EQ(parallel.message().tool_calls.size(), 2u);
    options.parallel_tool_calls = false;
    ChoiceOutput single(test_tokenizer(), options);
    const MessageDelta all = joined(run_tokens(single, text));
    ASSERT_EQ(all.tool_calls.size(), 1u);
    EXPECT_EQ(all.tool_calls[0].arguments, R"({"a": 1})");
    ASSERT_EQ(single.message().tool_calls.size(), 1u);
    EXPECT_EQ(single.finish_reason("stop"), "tool_calls");
}

TEST(ServerChoiceOutput, ToolChoiceNoneLeavesCallsAsContent) {
    ChoiceOutputOptions options = chat_options();
    options.parser.tools = ToolCallParser::none;
    ChoiceOutput output(test_tokenizer(), options);
    const MessageDelta all = joined(run_tokens(output,
                                               "r\n</think>\n\n<minimax:tool_call>\n<invoke "
                                               "name=\"add\">\n</invoke>\n</minimax:tool_call>"));
    EXPECT_TRUE(all.tool_calls.empty());
    EXPECT_NE(all.content.find("<invoke name=\"add\">"), std::string::npos);
    EXPECT_EQ(output.finish_reason("stop"), "stop");
}

TEST(ServerChoiceOutput, StopStringInsideReasoning) {
    ChoiceOutputOptions options = chat_options();
    options.stop = {"STOP"};
    ChoiceOutput output(test_tokenizer(), options);
    const MessageDelta all = joined(run_tokens(output, "thinking STOP more\n</think>\n\nanswer"));
    EXPECT_TRUE(output.stopped());
    EXPECT_EQ(all.reasoning_content, "thinking ");
    EXPECT_TRUE(all.content.empty());
    EXPECT_EQ(output.finish_reason("cancelled"), "stop");
}

TEST(ServerChoiceOutput, SpecialTokensAreSkippedUnlessAsked) {
    const Tokenizer& tokenizer = test_tokenizer();
    const int32_t eos = *tokenizer.token_id("[e~[");
    ChoiceOutputOptions options;
    options.parse = false;
    ChoiceOutput skipped(tokenizer, options);
    skipped.push_token(tokenizer.encode("hi")[0]);
    EXPECT_TRUE(skipped.push_token(eos).content.empty());
    options.skip_special_tokens = false;
    ChoiceOutput kept(tokenizer, options);
    EXPECT_EQ(kept.push_token(eos).content, "[e~[");
}

}  // namespace
}  // namespace fourbit
