#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace fourbit {

namespace {

// Bucket bounds as vLLM sets them (engine.md §6).
const std::vector<double> kTimeToFirstTokenBuckets = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
    1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kInterTokenBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                7.5,  10.0,  20.0, 40.0,  80.0};
const std::vector<double> kRequestLatencyBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

const char* const kFinishedReasons[] = {"stop", "length", "abort", "error"};

// Prometheus prints floats with Go's shortest form; {} (shortest round-trip) is the same idea.
std::string number(double value) { return fmt::format("{}", value); }

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void histogram(std::string& out, std::string_view name, std::string_view help,
               const std::string& labels, const Histogram& h) {
    header(out, name, "histogram", help);
    const std::vector<int64_t> counts = h.cumulative_counts();
    for (size_t i = 0; i < h.upper_bounds().size(); ++i) {
        fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"{}\",{}}} {}\n", name,
                       number(h.upper_bounds()[i]), labels, counts[i]);
    }
    fmt::format_to(std::back_inserter(out), "{}_bucket{{le=\"+Inf\",{}}} {}\n", name, labels,
                   h.count());
    fmt::format_to(std::back_inserter(out), "{}_sum{{{}}} {}\n", name, labels, number(h.sum()));
    fmt::format_to(std::back_inserter(out), "{}_count{{{}}} {}\n", name, labels, h.count());
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
    const size_t bucket =
        std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
    ++counts_[bucket];
    ++count_;
    sum_ += value;
}

std::vector<int64_t> Histogram::cumulative_counts() const {
    std::vector<int64_t> out(upper_bounds_.size());
    int64_t total = 0;
    for (size_t i = 0; i < upper_bounds_.size(); ++i) out[i] = total += counts_[i];
    return out;
}

std::string prometheus_label_value(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

ServerMetrics::ServerMetrics(std::string model_name)
    : labels_(fmt::format("model_name=\"{}\"", prometheus_label_value(model_name))),
      time_to_first_token_(kTimeToFirstTokenBuckets),
      inter_token_latency_(kInterTokenBuckets),
      e2e_latency_(kRequestLatencyBuckets) {
    for (const char* reason : kFinishedReasons) finished_[reason] = 0;
}

void ServerMetrics::record_finished(std::string_view finished_reason) {
    std::lock_guard lock(mutex_);
    auto it = finished_.find(finished_reason);
    if (it == finished_.end()) it = finished_.emplace(std::string(finished_reason), 0).first;
    ++it->second;
}

void ServerMetrics::record_e2e_latency(double seconds) {
    std::lock_guard lock(mutex_);
    e2e_latency_.observe(seconds);
}

std::string ServerMetrics::render(const EngineStats& stats) {
    std::lock_guard lock(mutex_);
    for (double s : stats.time_to_first_token_s) time_to_first_token_.observe(s);
    for (double s : stats.inter_token_s) inter_token_latency_.observe(s);

    std::string out;
    auto gauge = [&](std::string_view name, std::string_view help, double value) {
        header(out, name, "gauge", help);
        fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels_, number(value));
    };
    auto counter = [&](std::string_view name, std::string_view help, int64_t value) {
        header(out, name, "counter", help);
        fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels_, value);
    };
    gauge("fourbit:num_requests_running", "Number of requests in model execution batches.",
          static_cast<double>(stats.requests_running));
    gauge("fourbit:num_requests_waiting", "Number of requests waiting to be processed.",
          static_cast<double>(stats.requests_waiting));
    gauge("fourbit:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          stats.kv_blocks_total > 0 ? static_cast<double>(stats.kv_blocks_in_use) /
                                          static_cast<double>(stats.kv_blocks_total)
                                    : 0.0);
    counter("fourbit:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            stats.prefix_cache_queries);
    counter("fourbit:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.", stats.prefix_cache_hits);
    counter("fourbit:num_preemptions_total", "Cumulative number of preemptions.",
            stats.num_preemptions);
    counter("fourbit:spec_decode_num_drafts_total", "Number of spec decoding drafts.",
            stats.spec_drafts);
    counter("fourbit:spec_decode_num_draft_tokens_total", "Number of draft tokens.",
            stats.spec_draft_tokens);
    counter("fourbit:spec_decode_num_accepted_tokens_total", "Number of accepted tokens.",
            stats.spec_accepted_tokens);
    header(out, "fourbit:spec_decode_num_accepted_tokens_per_pos_total", "counter",
           "Accepted tokens per draft position.");
    for (size_t i = 0; i < stats.spec_accepted_per_position.size(); ++i) {
        fmt::format_to(std::back_inserter(out),
                       "fourbit:spec_decode_num_accepted_tokens_per_pos_total{{position=\"{}\",{}}} "
                       "{}\n",
                       i, labels_, stats.spec_accepted_per_position[i]);
    }
    counter("fourbit:prompt_tokens_total", "Number of prefill tokens processed.",
            stats.prompt_tokens_total);
    counter("fourbit:generation_tokens_total", "Number of generation tokens processed.",
            stats.generation_tokens_total);
    header(out, "fourbit:request_success_total", "counter",
           "Count of successfully processed requests.");
    for (const auto& [reason, count] : finished_) {
        fmt::format_to(std::back_inserter(out),
                       "fourbit:request_success_total{{finished_reason=\"{}\",{}}} {}\n",
                       prometheus_label_value(reason), labels_, count);
    }
    histogram(out, "fourbit:time_to_first_token_seconds",
              "Histogram of time to first token in seconds.", labels_, time_to_first_token_);
    histogram(out, "fourbit:inter_token_latency_seconds",
              "Histogram of inter-token latency in seconds.", labels_, inter_token_latency_);
    histogram(out, "fourbit:e2e_request_latency_seconds",
              "Histogram of e2e request latency in seconds.", labels_, e2e_latency_);
    return out;
}

}  // namespace fourbit
