#include "bench/stream_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

namespace fourbit::bench {

namespace {

constexpr double kWindowS = 1.0;

}  // namespace

TokenTimes token_times(const RecordedStream& stream) {
    TokenTimes out;
    out.from_token_ids = !stream.chunks.empty() &&
                         std::all_of(stream.chunks.begin(), stream.chunks.end(),
                                     [](const TokenChunk& c) { return c.n_token_ids >= 0; });
    if (!out.from_token_ids) {
        for (const TokenChunk& chunk : stream.chunks) out.times_s.push_back(chunk.time_s);
        return out;
    }
    for (const TokenChunk& chunk : stream.chunks) {
        const int64_t k = chunk.n_token_ids;
        if (k == 0) continue;
        if (k == 1) {
            out.times_s.push_back(chunk.time_s);
            continue;
        }
        // NOTE: several tokens in one chunk arrived together; spreading them over the gap since
        // the previous token keeps the 1-second windows of peak t/s from seeing a spike.
        const double previous = !out.times_s.empty()   ? out.times_s.back()
                                : stream.first_token_s ? *stream.first_token_s
                                                       : stream.start_s;
        for (int64_t i = 0; i < k; ++i) {
            out.times_s.push_back(previous + (chunk.time_s - previous) * double(i + 1) / double(k));
        }
    }
    return out;
}

int64_t decode_token_count(const std::vector<double>& times_s) {
    if (times_s.size() < 2) return 0;
    const double first = times_s.front();
    return std::count_if(times_s.begin(), times_s.end(), [first](double t) { return t > first; });
}

int64_t counted_prompt_tokens(int64_t usage_prompt_tokens, int64_t expected_prompt_tokens) {
    if (usage_prompt_tokens > 0 && std::abs(double(usage_prompt_tokens - expected_prompt_tokens)) <
                                       0.2 * double(expected_prompt_tokens)) {
        return usage_prompt_tokens;
    }
    return expected_prompt_tokens;
}

RequestMetrics request_metrics(const RecordedStream& stream, double latency_s,
                               int64_t expected_prompt_tokens) {
    RequestMetrics out;
    const TokenTimes tokens = token_times(stream);
    out.generated_tokens = static_cast<int64_t>(tokens.times_s.size());
    out.tokens_from_ids = tokens.from_token_ids;
    out.prompt_tokens = counted_prompt_tokens(stream.usage_prompt_tokens, expected_prompt_tokens);
    if (stream.first_response_s) out.ttfr_s = *stream.first_response_s - stream.start_s;
    if (stream.first_token_s) {
        out.e2e_ttft_s = *stream.first_token_s - stream.start_s;
        // est_ppt is measured from the first response, as llama-benchy does, but only for
        // requests that produced output at all.
        if (out.ttfr_s) out.est_ppt_s = std::max(0.0, *out.ttfr_s - latency_s);
    }
    if (out.est_ppt_s && *out.est_ppt_s > 0) {
        out.prefill_tps = double(out.prompt_tokens) / *out.est_ppt_s;
    }
    if (tokens.times_s.size() > 1) {
        const double span = tokens.times_s.back() - tokens.times_s.front();
        const int64_t decode_tokens = decode_token_count(tokens.times_s);
        if (span > 0 && decode_tokens > 0) out.decode_tps = double(decode_tokens) / span;
    }
    out.peak_tps = peak_throughput(tokens.times_s);
    return out;
}

BatchMetrics batch_metrics(const std::vector<RecordedStream>& streams, double latency_s,
                           int64_t expected_prompt_tokens) {
    BatchMetrics out;
    double min_start = INFINITY, max_first_token = -INFINITY, min_first_token = INFINITY;
    double max_last_token = -INFINITY;
    int64_t prompt_sum = 0, decode_sum = 0;
    bool any_first_token = false;
    std::vector<double> all_times;
    for (const RecordedStream& stream : streams) {
        if (!stream.error.empty()) continue;
        out.requests.push_back(request_metrics(stream, latency_s, expected_prompt_tokens));
        const TokenTimes tokens = token_times(stream);
        all_times.insert(all_times.end(), tokens.times_s.begin(), tokens.times_s.end());
        min_start = std::min(min_start, stream.start_s);
        prompt_sum += out.requests.back().prompt_tokens;
        decode_sum += decode_token_count(tokens.times_s);
        max_last_token =
            std::max(max_last_token, tokens.times_s.empty() ? stream.end_s : tokens.times_s.back());
        if (stream.first_token_s) {
            any_first_token = true;
            max_first_token = std::max(max_first_token, *stream.first_token_s);
            min_first_token = std::min(min_first_token, *stream.first_token_s);
        }
    }
    if (any_first_token) {
        const double prefill_span = max_first_token - min_start;
        if (prefill_span > 0) out.prefill_total_tps = double(prompt_sum) / prefill_span;
        const double decode_span = max_last_token - min_first_token;
        if (decode_span > 0 && decode_sum > 0) {
            out.decode_total_tps = double(decode_sum) / decode_span;
        }
    }
    out.peak_total_tps = peak_throughput(std::move(all_times));
    return out;
}

std::optional<double> peak_throughput(std::vector<double> times_s) {
    if (times_s.empty()) return std::nullopt;
    std::sort(times_s.begin(), times_s.end());
    const double span = times_s.back() - times_s.front();
    if (span > 0 && span < kWindowS) return double(times_s.size()) / span;
    size_t most = 0;
    size_t begin = 0;
    for (size_t end = 0; end < times_s.size(); ++end) {
        while (begin < end && times_s[begin] <= times_s[end] - kWindowS) ++begin;
        most = std::max(most, end - begin + 1);
    }
    return double(most) / kWindowS;
}

std::vector<std::pair<double, double>> throughput_series(std::vector<double> times_s) {
    std::vector<std::pair<double, double>> out;
    if (times_s.empty()) return out;
    std::sort(times_s.begin(), times_s.end());
    size_t begin = 0;
    for (size_t end = 0; end < times_s.size(); ++end) {
        while (begin < end && times_s[begin] <= times_s[end] - kWindowS) ++begin;
        out.emplace_back(times_s[end] - times_s.front(), double(end - begin + 1) / kWindowS);
    }
    return out;
}

std::optional<Summary> summarize(const std::vector<double>& values) {
    if (values.empty()) return std::nullopt;
    Summary out;
    out.values = values;
    out.mean = std::accumulate(values.begin(), values.end(), 0.0) / double(values.size());
    double squares = 0;
    for (double v : values) squares += (v - out.mean) * (v - out.mean);
    out.std = std::sqrt(squares / double(values.size()));
    return out;
}

}  // namespace fourbit::bench
