// The benchmark's formulas as pure functions over recorded streams (timestamps in, numbers out),
// with llama-benchy's definitions (docs/peers.md §2.1): TTFR, est_ppt, e2e TTFT, prefill and
// decode t/s per request, totals under concurrency, peak t/s over 1-second windows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fourbit::bench {

// One SSE chunk that carried generated output. `n_token_ids` < 0: the chunk had no token_ids
// field (the server does not send them), so tokens can only be estimated from chunks.
struct TokenChunk {
    double time_s = 0;
    int64_t n_token_ids = -1;
};

// One streamed request as the client saw it, all times in seconds on one steady clock.
struct RecordedStream {
    double start_s = 0;                      // just before the request was written
    std::optional<double> first_response_s;  // first chunk whose `choices` is non-empty
    std::optional<double> first_token_s;     // first chunk carrying generated output
    std::vector<TokenChunk> chunks;          // chunks carrying generated output, in order
    double end_s = 0;                        // the stream ended
    int64_t usage_prompt_tokens = 0;         // usage.prompt_tokens; 0 when not sent
    std::optional<int64_t> usage_completion_tokens;
    std::string error;  // non-empty: the request failed and is left out of every figure
};

// The generated tokens' times. With token ids in every output chunk, a chunk of k tokens
// spreads them evenly between the previous token (or the first output chunk) and its own
// arrival; otherwise each chunk counts as one token (`from_token_ids` false: undercounts when
// the server sends several tokens per chunk, e.g. speculative decoding).
struct TokenTimes {
    std::vector<double> times_s;
    bool from_token_ids = true;
};
TokenTimes token_times(const RecordedStream& stream);

// Tokens after the first token's timestamp: the decode tokens of (tokens - 1) / (last - first).
int64_t decode_token_count(const std::vector<double>& times_s);

// The prompt size used for prefill t/s: the server's usage.prompt_tokens when it is within 20% of
// the expected count (what the prompt was built for), else the expected count.
int64_t counted_prompt_tokens(int64_t usage_prompt_tokens, int64_t expected_prompt_tokens);

// Per request. Missing values (no first token, one token) are nullopt, never zero.
struct RequestMetrics {
    std::optional<double> ttfr_s;       // first response chunk - start
    std::optional<double> e2e_ttft_s;   // first output chunk - start
    std::optional<double> est_ppt_s;    // max(0, ttfr - latency): estimated prompt processing
    std::optional<double> prefill_tps;  // prompt tokens / est_ppt
    std::optional<double> decode_tps;   // decode tokens / (last token - first token)
    std::optional<double> peak_tps;     // peak_throughput of this request's tokens
    int64_t prompt_tokens = 0;          // counted_prompt_tokens
    int64_t generated_tokens = 0;
    bool tokens_from_ids = true;
};
RequestMetrics request_metrics(const RecordedStream& stream, double latency_s,
                               int64_t expected_prompt_tokens);

// Requests sent together (one run at one concurrency).
struct BatchMetrics {
    std::optional<double> prefill_total_tps;  // sum prompt / (max first token - min start)
    std::optional<double> decode_total_tps;   // sum decode tokens / (max last - min first token)
    std::optional<double> peak_total_tps;     // peak_throughput over every request's tokens
    std::vector<RequestMetrics> requests;     // the requests without error
};
BatchMetrics batch_metrics(const std::vector<RecordedStream>& streams, double latency_s,
                           int64_t expected_prompt_tokens);

// The largest number of tokens in any 1-second window ending at a token, per second; when all
// tokens fall within less than a second, tokens / their span (so a short burst does not read
// lower than its mean rate).
std::optional<double> peak_throughput(std::vector<double> times_s);

// [seconds since the first token, tokens in the trailing 1-second window] at every token: the
// per-second throughput time series.
std::vector<std::pair<double, double>> throughput_series(std::vector<double> times_s);

// Mean and population standard deviation over runs (llama-benchy's "mean ± std").
struct Summary {
    double mean = 0;
    double std = 0;
    std::vector<double> values;
};
std::optional<Summary> summarize(const std::vector<double>& values);

}  // namespace fourbit::bench
