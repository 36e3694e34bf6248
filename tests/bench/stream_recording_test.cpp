// The client side of a stream: SSE framing split at any byte, and how chunks of the shapes
// servers send (role chunk, content, reasoning, tool calls, token ids, usage) are recorded.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bench/api_client.h"
#include "util/error.h"

namespace fourbit::bench {
namespace {

using nlohmann::json;

TEST(SseDecoder, SameEventsWhateverTheReadSizes) {
    const std::string wire =
        ": ping\n\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\nevent: x\ndata: [DONE]\n\n";
    for (size_t piece = 1; piece <= wire.size(); ++piece) {
        SseDecoder decoder;
        std::vector<std::string> events;
        for (size_t at = 0; at < wire.size(); at += piece) {
            decoder.feed(std::string_view(wire).substr(at, piece),
                         [&](std::string_view data) { events.emplace_back(data); });
        }
        ASSERT_EQ(events, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}))
            << "piece " << piece;
    }
}

TEST(RecordChunk, RoleChunkIsAResponseButNoToken) {
    RecordedStream s;
    record_chunk(s, json::parse(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})"),
                 1.0);
    EXPECT_EQ(s.first_response_s, 1.0);
    EXPECT_FALSE(s.first_token_s.has_value());
    EXPECT_TRUE(s.chunks.empty());
}

TEST(RecordChunk, ContentReasoningToolCallsAndTokenIds) {
    RecordedStream s;
    record_chunk(
        s, json::parse(R"({"choices":[{"delta":{"reasoning_content":"hm"},"token_ids":[5]}]})"),
        1.0);
    record_chunk(s, json::parse(R"({"choices":[{"delta":{"content":"ab"},"token_ids":[6,7]}]})"),
                 1.1);
    record_chunk(
        s, json::parse(R"({"choices":[{"delta":{"tool_calls":[{"index":0}]},"token_ids":[8]}]})"),
        1.2);
    // A token that produced no text yet (held back) still counts when its id is sent.
    record_chunk(s, json::parse(R"({"choices":[{"delta":{},"token_ids":[9]}]})"), 1.3);
    // The finish chunk: no text, no ids.
    record_chunk(
        s, json::parse(R"({"choices":[{"delta":{},"finish_reason":"length","token_ids":[]}]})"),
        1.4);
    record_chunk(
        s, json::parse(R"({"choices":[],"usage":{"prompt_tokens":42,"completion_tokens":5}})"),
        1.5);
    EXPECT_EQ(s.first_response_s, 1.0);
    EXPECT_EQ(s.first_token_s, 1.0);
    ASSERT_EQ(s.chunks.size(), 4u);
    EXPECT_EQ(s.chunks[1].n_token_ids, 2);
    EXPECT_EQ(s.usage_prompt_tokens, 42);
    EXPECT_EQ(s.usage_completion_tokens, 5);
    EXPECT_EQ(token_times(s).times_s.size(), 5u);
}

TEST(RecordChunk, TextWithoutIdsIsAChunkToCount) {
    RecordedStream s;
    record_chunk(s, json::parse(R"({"choices":[{"delta":{"content":"x"}}]})"), 2.0);
    record_chunk(s, json::parse(R"({"choices":[{"delta":{"reasoning":"y"}}]})"), 2.1);
    ASSERT_EQ(s.chunks.size(), 2u);
    EXPECT_EQ(s.chunks[0].n_token_ids, -1);
    EXPECT_FALSE(token_times(s).from_token_ids);
}

TEST(RecordChunk, OddShapesAreIgnoredNotFatal) {
    RecordedStream s;
    for (const char* text :
         {R"([])", R"({"choices":"x"})", R"({"choices":[3]})",
          R"({"usage":{"prompt_tokens":"many"}})", R"({"choices":[{"delta":5}]})"}) {
        record_chunk(s, json::parse(text), 1.0);
    }
    EXPECT_TRUE(s.chunks.empty());
    EXPECT_EQ(s.usage_prompt_tokens, 0);
}

TEST(Endpoint, SplitsBaseUrl) {
    const Endpoint e = parse_endpoint("http://127.0.0.1:8000/v1/", "k");
    EXPECT_EQ(e.scheme_host_port, "http://127.0.0.1:8000");
    EXPECT_EQ(e.path_prefix, "/v1");
    EXPECT_EQ(parse_endpoint("https://host", "").path_prefix, "");
    EXPECT_THROW(parse_endpoint("127.0.0.1:8000/v1", ""), Error);
    EXPECT_THROW(parse_endpoint("ftp://x/v1", ""), Error);
}

TEST(ApiClient, UnreachableServerIsAnErrorInTheRecordNotACrash) {
    // Port 1 on localhost: nothing listens there.
    ApiClient client(parse_endpoint("http://127.0.0.1:1/v1", ""));
    const RecordedStream s = client.stream_chat({{"stream", true}});
    EXPECT_NE(s.error.find("127.0.0.1:1/v1/chat/completions"), std::string::npos) << s.error;
    EXPECT_THROW(client.get_json("/models"), Error);
}

}  // namespace
}  // namespace fourbit::bench
