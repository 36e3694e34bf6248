// The formulas on recorded streams: timestamps in, numbers out, each expected value worked out
// by hand from llama-benchy's definitions (docs/peers.md §2.1).
#include "bench/stream_metrics.h"

#include <gtest/gtest.h>

namespace fourbit::bench {
namespace {

// A request started at `start`, first response and first token at `first`, then one token per
// chunk at each of `times` (the first of which is `first`), with token ids.
RecordedStream one_token_chunks(double start, std::vector<double> times, int64_t usage_prompt) {
    RecordedStream s;
    s.start_s = start;
    s.first_response_s = times.front();
    s.first_token_s = times.front();
    for (double t : times) s.chunks.push_back({t, 1});
    s.end_s = times.back() + 0.001;
    s.usage_prompt_tokens = usage_prompt;
    return s;
}

TEST(StreamMetrics, SingleRequestFormulas) {
    // start 10.0, first token 10.5, then 4 more tokens 0.1 s apart: 5 tokens, last at 10.9.
    const RecordedStream s = one_token_chunks(10.0, {10.5, 10.6, 10.7, 10.8, 10.9}, 1000);
    const RequestMetrics m = request_metrics(s, /*latency_s=*/0.1, /*expected=*/1000);
    EXPECT_NEAR(*m.ttfr_s, 0.5, 1e-12);
    EXPECT_NEAR(*m.e2e_ttft_s, 0.5, 1e-12);
    EXPECT_NEAR(*m.est_ppt_s, 0.4, 1e-12);          // ttfr - latency
    EXPECT_NEAR(*m.prefill_tps, 1000 / 0.4, 1e-6);  // prompt / est_ppt
    EXPECT_NEAR(*m.decode_tps, 4 / 0.4, 1e-6);      // (5 - 1) / (10.9 - 10.5)
    EXPECT_NEAR(*m.peak_tps, 5 / 0.4, 1e-6);        // all within 1 s: tokens / span
    EXPECT_EQ(m.generated_tokens, 5);
    EXPECT_TRUE(m.tokens_from_ids);
}

TEST(StreamMetrics, RoleChunkBeforeFirstTokenMovesTtfrNotTtft) {
    RecordedStream s = one_token_chunks(0.0, {1.0, 1.5}, 100);
    s.first_response_s = 0.2;  // an empty role chunk arrived early
    const RequestMetrics m = request_metrics(s, 0.05, 100);
    EXPECT_NEAR(*m.ttfr_s, 0.2, 1e-12);
    EXPECT_NEAR(*m.e2e_ttft_s, 1.0, 1e-12);
    EXPECT_NEAR(*m.prefill_tps, 100 / 0.15, 1e-6);  // llama-benchy measures pp from TTFR
}

TEST(StreamMetrics, PromptTokensFromUsageOnlyWithin20Percent) {
    EXPECT_EQ(counted_prompt_tokens(110, 100), 110);
    EXPECT_EQ(counted_prompt_tokens(81, 100), 81);
    EXPECT_EQ(counted_prompt_tokens(120, 100), 100);  // 20% off: not "within"
    EXPECT_EQ(counted_prompt_tokens(0, 100), 100);    // no usage
    const RecordedStream s = one_token_chunks(0.0, {2.0, 2.5}, 500);
    EXPECT_NEAR(*request_metrics(s, 0, 100).prefill_tps, 100 / 2.0, 1e-9);
}

TEST(StreamMetrics, LatencyLargerThanTtfrGivesNoPrefillRate) {
    const RecordedStream s = one_token_chunks(0.0, {0.01, 0.02}, 10);
    const RequestMetrics m = request_metrics(s, 0.5, 10);
    EXPECT_EQ(*m.est_ppt_s, 0.0);
    EXPECT_FALSE(m.prefill_tps.has_value());
}

TEST(StreamMetrics, MultiTokenChunksAreSpreadOverTheGap) {
    // Speculative decoding: the second chunk carries 3 tokens. They are spread over the gap
    // since the previous token: 1.0 + 0.3 * (1/3, 2/3, 3/3).
    RecordedStream s;
    s.start_s = 0;
    s.first_response_s = s.first_token_s = 1.0;
    s.chunks = {{1.0, 1}, {1.3, 3}, {1.4, 0}, {1.5, 1}};
    const TokenTimes t = token_times(s);
    ASSERT_TRUE(t.from_token_ids);
    ASSERT_EQ(t.times_s.size(), 5u);
    EXPECT_NEAR(t.times_s[1], 1.1, 1e-12);
    EXPECT_NEAR(t.times_s[2], 1.2, 1e-12);
    EXPECT_NEAR(t.times_s[3], 1.3, 1e-12);
    EXPECT_NEAR(t.times_s[4], 1.5, 1e-12);
    EXPECT_NEAR(*request_metrics(s, 0, 1).decode_tps, 4 / 0.5, 1e-9);
}

TEST(StreamMetrics, WithoutTokenIdsEachChunkCountsOnce) {
    RecordedStream s;
    s.start_s = 0;
    s.first_response_s = s.first_token_s = 1.0;
    s.chunks = {{1.0, -1}, {1.3, -1}, {1.5, -1}};
    const TokenTimes t = token_times(s);
    EXPECT_FALSE(t.from_token_ids);
    EXPECT_EQ(t.times_s, (std::vector<double>{1.0, 1.3, 1.5}));
    // Token ids on some chunks only still mean the ids cannot be trusted for the whole stream.
    s.chunks[1].n_token_ids = 4;
    EXPECT_FALSE(token_times(s).from_token_ids);
}

TEST(StreamMetrics, PeakOverOneSecondWindows) {
    // 3 tokens in [0, 0.9], then 5 tokens in [2.0, 2.8]: the densest 1-second window holds 5.
    EXPECT_NEAR(*peak_throughput({0.0, 0.45, 0.9, 2.0, 2.2, 2.4, 2.6, 2.8}), 5.0, 1e-12);
    // A token exactly 1 s before another is outside that window (window is (t-1, t]).
    EXPECT_NEAR(*peak_throughput({0.0, 1.0, 2.0, 3.0}), 1.0, 1e-12);
    // A burst shorter than a second: tokens / span, not tokens / 1 s.
    EXPECT_NEAR(*peak_throughput({5.0, 5.1, 5.2, 5.25}), 4 / 0.25, 1e-9);
    EXPECT_FALSE(peak_throughput({}).has_value());
}

TEST(StreamMetrics, ThroughputSeriesCountsTheTrailingSecond) {
    const auto series = throughput_series({3.0, 3.5, 3.9, 4.2, 5.5});
    ASSERT_EQ(series.size(), 5u);
    EXPECT_EQ(series[0], std::make_pair(0.0, 1.0));
    EXPECT_NEAR(series[2].second, 3.0, 1e-12);  // 3.0, 3.5, 3.9
    EXPECT_NEAR(series[3].second, 3.0, 1e-12);  // 3.5, 3.9, 4.2 (3.0 is 1.2 s back)
    EXPECT_NEAR(series[4].first, 2.5, 1e-12);
    EXPECT_NEAR(series[4].second, 1.0, 1e-12);
}

TEST(StreamMetrics, BatchTotalsUnderConcurrency) {
    // Two requests started at 0.0 and 0.1; first tokens at 1.0 and 1.2; decode to 2.0 and 2.2.
    std::vector<RecordedStream> batch = {
        one_token_chunks(0.0, {1.0, 1.5, 2.0}, 200),
        one_token_chunks(0.1, {1.2, 1.7, 2.2}, 210),
    };
    RecordedStream failed = one_token_chunks(0.0, {0.5, 0.6}, 200);
    failed.error = "HTTP 500";
    batch.push_back(failed);
    const BatchMetrics m = batch_metrics(batch, 0.0, 200);
    ASSERT_EQ(m.requests.size(), 2u);  // the failed request is left out
    // (200 + 210) prompt tokens / (max first token 1.2 - min start 0.0)
    EXPECT_NEAR(*m.prefill_total_tps, 410 / 1.2, 1e-9);
    // (2 + 2) decode tokens / (max last 2.2 - min first 1.0)
    EXPECT_NEAR(*m.decode_total_tps, 4 / 1.2, 1e-9);
    // Densest second: window (1.2, 2.2] holds 1.5, 1.7, 2.0, 2.2; (1.0, 2.0] holds
    // 1.2, 1.5, 1.7, 2.0: 4 either way.
    EXPECT_NEAR(*m.peak_total_tps, 4.0, 1e-12);
}

TEST(StreamMetrics, NoOutputMeansNoRates) {
    RecordedStream s;
    s.start_s = 0;
    s.first_response_s = 0.3;
    s.end_s = 0.4;
    const RequestMetrics m = request_metrics(s, 0, 10);
    EXPECT_TRUE(m.ttfr_s.has_value());
    EXPECT_FALSE(m.e2e_ttft_s.has_value());
    EXPECT_FALSE(m.prefill_tps.has_value());
    EXPECT_FALSE(m.decode_tps.has_value());
    const BatchMetrics b = batch_metrics({s}, 0, 10);
    EXPECT_FALSE(b.prefill_total_tps.has_value());
    EXPECT_FALSE(b.decode_total_tps.has_value());
}

TEST(StreamMetrics, SummaryIsMeanAndPopulationStd) {
    const auto s = summarize({2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0});
    ASSERT_TRUE(s.has_value());
    EXPECT_NEAR(s->mean, 5.0, 1e-12);
    EXPECT_NEAR(s->std, 2.0, 1e-12);
    EXPECT_FALSE(summarize({}).has_value());
}

}  // namespace
}  // namespace fourbit::bench
