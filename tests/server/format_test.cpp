// What goes on the wire: SSE framing, chunk and answer shapes, usage, logprobs, errors; the
// Prometheus text; API-key checks.
#include <gtest/gtest.h>

#include <string>

#include "server/auth.h"
#include "server/metrics.h"
#include "server/response_json.h"
#include "server/test_tokenizer.h"

namespace fourbit {
namespace {

using ordered_json = nlohmann::ordered_json;

const ResponseHeader kHeader{"chatcmpl-1", 1700000000, "tiny"};

// The JSON of one SSE event, checking the framing.
ordered_json event_json(const std::string& event) {
    EXPECT_TRUE(event.starts_with("data: ")) << event;
    EXPECT_TRUE(event.ends_with("\n\n")) << event;
    const std::string body = event.substr(6, event.size() - 8);
    EXPECT_EQ(body.find('\n'), std::string::npos) << "one line per event";
    return ordered_json::parse(body);
}

TEST(ServerResponseJson, SseFraming) {
    EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
    EXPECT_EQ(kSsePing, ": ping\n\n");
    // Newlines inside text are escaped, so an event is always one line.
    const ordered_json json = event_json(sse_event({{"text", "a\nb\n\ndata: x"}}));
    EXPECT_EQ(json["text"], "a\nb\n\ndata: x");
}

TEST(ServerResponseJson, FirstChunkCarriesTheRoleAndTokenIds) {
    MessageDelta delta;
    delta.reasoning_content = "hmm";
    ChoiceJson choice;
    choice.index = 1;
    choice.body = chat_delta_json(delta, /*with_role=*/true);
    choice.token_ids = {42};
    const ordered_json chunk =
        event_json(sse_event(chat_chunk_json(kHeader, {choice}, std::nullopt)));
    EXPECT_EQ(chunk["id"], "chatcmpl-1");
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["created"], 1700000000);
    EXPECT_EQ(chunk["model"], "tiny");
    EXPECT_FALSE(chunk.contains("usage")) << "omitted without include_usage";
    ASSERT_EQ(chunk["choices"].size(), 1u);
    const ordered_json& c = chunk["choices"][0];
    EXPECT_EQ(c["index"], 1);
    EXPECT_EQ(c["delta"]["role"], "assistant");
    EXPECT_EQ(c["delta"]["reasoning_content"], "hmm");
    EXPECT_EQ(c["delta"]["reasoning"], "hmm");
    EXPECT_EQ(c["delta"]["content"], "");
    EXPECT_TRUE(c["finish_reason"].is_null());
    EXPECT_TRUE(c["logprobs"].is_null());
    EXPECT_EQ(c["token_ids"], ordered_json::array({42}));
    // Later deltas: only what they have.
    delta = {};
    delta.content = "x";
    EXPECT_EQ(chat_delta_json(delta, false), ordered_json({{"content", "x"}}));
    EXPECT_EQ(chat_delta_json(MessageDelta{}, false), ordered_json::object());
}

TEST(ServerResponseJson, ToolCallDeltas) {
    MessageDelta delta;
    delta.tool_calls.push_back({0, std::string("call_1"), std::string("add"), "{\"a\": 1"});
    delta.tool_calls.push_back({1, std::nullopt, std::nullopt, "}"});
    const ordered_json json = chat_delta_json(delta, false);
    ASSERT_EQ(json["tool_calls"].size(), 2u);
    EXPECT_EQ(
        json["tool_calls"][0],
        ordered_json::parse(
            R"({"index": 0, "id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1"}})"));
    EXPECT_EQ(json["tool_calls"][1],
              ordered_json::parse(R"({"index": 1, "function": {"arguments": "}"}})"));
}

TEST(ServerResponseJson, UsageChunkHasNoChoices) {
    const ordered_json chunk = chat_chunk_json(kHeader, {}, usage_json({10, 3}));
    EXPECT_EQ(chunk["choices"], ordered_json::array());
    EXPECT_EQ(chunk["usage"],
              ordered_json::parse(
                  R"({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13})"));
    // include_usage without continuous stats: null on the other chunks, as OpenAI sends.
    EXPECT_TRUE(chat_chunk_json(kHeader, {}, ordered_json(nullptr))["usage"].is_null());
}

TEST(ServerResponseJson, WholeAnswers) {
    ParsedMessage message;
    message.content = "4";
    message.tool_calls.push_back({"call_x", "add", "{\"a\": 1}"});
    ChoiceJson choice;
    choice.body = chat_message_json(message);
    choice.finish_reason = "tool_calls";
    choice.token_ids = {1, 2};
    const ordered_json answer =
        chat_completion_json(kHeader, {choice}, {5, 2}, std::vector<int32_t>{7, 8});
    EXPECT_EQ(answer["object"], "chat.completion");
    EXPECT_EQ(answer["usage"]["total_tokens"], 7);
    EXPECT_EQ(answer["prompt_token_ids"], ordered_json::array({7, 8}));
    const ordered_json& m = answer["choices"][0]["message"];
    EXPECT_EQ(m["role"], "assistant");
    EXPECT_EQ(m["content"], "4");
    EXPECT_TRUE(m["reasoning_content"].is_null());
    EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "add");
    EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], "{\"a\": 1}");
    EXPECT_EQ(answer["choices"][0]["finish_reason"], "tool_calls");

    ChoiceJson text;
    text.body = "hello";
    text.finish_reason = "length";
    const ordered_json completion = completion_json({"cmpl-1", 1, "tiny"}, {text}, {1, 1});
    EXPECT_EQ(completion["object"], "text_completion");
    EXPECT_EQ(completion["choices"][0]["text"], "hello");
    EXPECT_FALSE(completion.contains("prompt_token_ids"));
}

TEST(ServerResponseJson, Logprobs) {
    const Tokenizer& tokenizer = test_tokenizer();
    const std::vector<int32_t> ids = tokenizer.encode("Hello world");
    ASSERT_GE(ids.size(), 2u);
    std::vector<TokenLogprob> tokens = {{ids[0], -0.5f, {{ids[0], -0.5f}, {ids[1], -1.5f}}},
                                        {ids[1], -0.25f, {}}};
    const ordered_json chat = chat_logprobs_json(tokenizer, tokens);
    ASSERT_EQ(chat["content"].size(), 2u);
    EXPECT_EQ(chat["content"][0]["token"], token_text(tokenizer, ids[0]));
    EXPECT_EQ(chat["content"][0]["logprob"], -0.5);
    EXPECT_EQ(chat["content"][0]["top_logprobs"].size(), 2u);
    EXPECT_EQ(chat["content"][0]["top_logprobs"][1]["logprob"], -1.5);
    std::string bytes;
    for (const auto& b : chat["content"][1]["bytes"]) bytes += static_cast<char>(b.get<int>());
    EXPECT_EQ(bytes, tokenizer.token_bytes(ids[1]));

    const std::vector<int64_t> offsets = {0, 5};
    const ordered_json completion = completion_logprobs_json(tokenizer, tokens, offsets);
    EXPECT_EQ(completion["tokens"].size(), 2u);
    EXPECT_EQ(completion["token_logprobs"][1], -0.25);
    EXPECT_EQ(completion["text_offset"], ordered_json::array({0, 5}));
    EXPECT_EQ(completion["top_logprobs"][0].size(), 2u);
    EXPECT_TRUE(completion["top_logprobs"][1].is_null());
}

TEST(ServerResponseJson, ErrorObject) {
    const ordered_json json = error_json(ApiError(400, "invalid_request_error", "bad n", "n"));
    EXPECT_EQ(
        json,
        ordered_json::parse(
            R"({"error": {"message": "bad n", "type": "invalid_request_error", "param": "n", "code": null}})"));
    const ordered_json plain = error_json(ApiError(500, "server_error", "x"));
    EXPECT_TRUE(plain["error"]["param"].is_null());
}

TEST(ServerResponseJson, ResponseIdsAreUnique) {
    const std::string a = make_response_id("chatcmpl-"), b = make_response_id("chatcmpl-");
    EXPECT_TRUE(a.starts_with("chatcmpl-"));
    EXPECT_EQ(a.size(), 9u + 32u);
    EXPECT_NE(a, b);
}

TEST(ServerMetrics, HistogramIsCumulative) {
    Histogram histogram({0.1, 1.0});
    for (double x : {0.05, 0.1, 0.5, 7.0}) histogram.observe(x);
    EXPECT_EQ(histogram.cumulative_counts(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(histogram.count(), 4);
    EXPECT_DOUBLE_EQ(histogram.sum(), 7.65);
}

// The value of the sample line that starts with `series` ("name{labels}").
double sample(const std::string& text, const std::string& series) {
    const size_t at = text.find("\n" + series + " ");
    EXPECT_NE(at, std::string::npos) << series;
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

TEST(ServerMetrics, TextExposition) {
    ServerMetrics metrics("my \"model\"");
    metrics.record_finished("stop");
    metrics.record_finished("stop");
    metrics.record_finished("abort");
    EngineStats stats;
    stats.requests_running = 2;
    stats.requests_waiting = 1;
    stats.prompt_tokens_total = 100;
    stats.generation_tokens_total = 50;
    stats.kv_blocks_in_use = 16;
    stats.kv_blocks_total = 64;
    stats.prefix_cache_queries = 300;
    stats.prefix_cache_hits = 128;
    stats.num_preemptions = 2;
    stats.spec_drafts = 7;
    stats.spec_draft_tokens = 20;
    stats.spec_accepted_tokens = 11;
    stats.spec_accepted_per_position = {6, 4, 1};
    stats.time_to_first_token_s = {0.003, 0.2};
    stats.inter_token_s = {0.02};
    const std::string text = metrics.render(stats);
    const std::string labels = "model_name=\"my \\\"model\\\"\"";
    EXPECT_EQ(sample(text, "fourbit:num_requests_running{" + labels + "}"), 2);
    EXPECT_EQ(sample(text, "fourbit:num_requests_waiting{" + labels + "}"), 1);
    EXPECT_EQ(sample(text, "fourbit:kv_cache_usage_perc{" + labels + "}"), 0.25);
    EXPECT_EQ(sample(text, "fourbit:prompt_tokens_total{" + labels + "}"), 100);
    EXPECT_EQ(sample(text, "fourbit:generation_tokens_total{" + labels + "}"), 50);
    EXPECT_EQ(sample(text, "fourbit:prefix_cache_queries_total{" + labels + "}"), 300);
    EXPECT_EQ(sample(text, "fourbit:prefix_cache_hits_total{" + labels + "}"), 128);
    EXPECT_EQ(sample(text, "fourbit:num_preemptions_total{" + labels + "}"), 2);
    EXPECT_EQ(sample(text, "fourbit:spec_decode_num_drafts_total{" + labels + "}"), 7);
    EXPECT_EQ(sample(text, "fourbit:spec_decode_num_draft_tokens_total{" + labels + "}"), 20);
    EXPECT_EQ(sample(text, "fourbit:spec_decode_num_accepted_tokens_total{" + labels + "}"), 11);
    EXPECT_EQ(sample(text, "fourbit:spec_decode_num_accepted_tokens_per_pos_total{position=\"1\"," +
                               labels + "}"),
              4);
    EXPECT_EQ(
        sample(text, "fourbit:request_success_total{finished_reason=\"stop\"," + labels + "}"), 2);
    EXPECT_EQ(
        sample(text, "fourbit:request_success_total{finished_reason=\"abort\"," + labels + "}"), 1);
    EXPECT_EQ(
        sample(text, "fourbit:request_success_total{finished_reason=\"length\"," + labels + "}"),
        0);
    EXPECT_EQ(
        sample(text, "fourbit:time_to_first_token_seconds_bucket{le=\"0.005\"," + labels + "}"), 1);
    EXPECT_EQ(
        sample(text, "fourbit:time_to_first_token_seconds_bucket{le=\"0.25\"," + labels + "}"), 2);
    EXPECT_EQ(
        sample(text, "fourbit:time_to_first_token_seconds_bucket{le=\"+Inf\"," + labels + "}"), 2);
    EXPECT_EQ(sample(text, "fourbit:time_to_first_token_seconds_count{" + labels + "}"), 2);
    EXPECT_EQ(sample(text, "fourbit:inter_token_latency_seconds_count{" + labels + "}"), 1);
    EXPECT_NE(text.find("# TYPE fourbit:time_to_first_token_seconds histogram\n"),
              std::string::npos);
    EXPECT_NE(text.find("# TYPE fourbit:num_requests_running gauge\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE fourbit:prompt_tokens_total counter\n"), std::string::npos);
    EXPECT_TRUE(text.ends_with("\n"));

    // The engine hands latency samples over once; the histograms keep them.
    EngineStats later;
    later.time_to_first_token_s = {30.0};
    const std::string next = metrics.render(later);
    EXPECT_EQ(sample(next, "fourbit:time_to_first_token_seconds_count{" + labels + "}"), 3);
    EXPECT_EQ(sample(next, "fourbit:time_to_first_token_seconds_bucket{le=\"20\"," + labels + "}"),
              2);
    EXPECT_EQ(sample(next, "fourbit:num_requests_running{" + labels + "}"), 0);
    EXPECT_EQ(sample(next, "fourbit:kv_cache_usage_perc{" + labels + "}"), 0)
        << "no capacity: 0, not NaN";
}

TEST(ServerMetrics, LabelEscaping) {
    EXPECT_EQ(prometheus_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(ServerAuth, ConstantTimeEqual) {
    EXPECT_TRUE(constant_time_equal("secret", "secret"));
    EXPECT_FALSE(constant_time_equal("secret", "secreT"));
    EXPECT_FALSE(constant_time_equal("secret", "secret2"));
    EXPECT_FALSE(constant_time_equal("secret", "secre"));
    EXPECT_FALSE(constant_time_equal("secret", ""));
    EXPECT_FALSE(constant_time_equal("", "")) << "an empty key never matches";
    EXPECT_FALSE(constant_time_equal("ab", "abab")) << "a repeated key is not the key";
}

TEST(ServerAuth, BearerKeys) {
    const ApiKeys none({});
    EXPECT_FALSE(none.enabled());
    EXPECT_TRUE(none.accepts(""));
    const ApiKeys keys({"k1", "second-key", ""});
    EXPECT_TRUE(keys.enabled());
    EXPECT_TRUE(keys.accepts("Bearer k1"));
    EXPECT_TRUE(keys.accepts("bearer second-key"));
    EXPECT_TRUE(keys.accepts("Bearer  k1 "));
    EXPECT_FALSE(keys.accepts("Bearer "));
    EXPECT_FALSE(keys.accepts("Bearer k2"));
    EXPECT_FALSE(keys.accepts("k1"));
    EXPECT_FALSE(keys.accepts("Basic k1"));
    EXPECT_FALSE(keys.accepts(""));
}

}  // namespace
}  // namespace fourbit
