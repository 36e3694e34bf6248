// /metrics: Prometheus text exposition (format 0.0.4) of the engine's state and the server's
// counters, under vLLM's metric names with a `fourbit:` prefix (engine.md §6), so dashboards
// built for vLLM read it unchanged.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine.h"

namespace fourbit {

// Cumulative histogram: counts per upper bound (le), plus +Inf, sum and count.
class Histogram {
public:
    explicit Histogram(std::vector<double> upper_bounds);
    void observe(double value);
    const std::vector<double>& upper_bounds() const { return upper_bounds_; }
    // Observations <= upper_bounds()[i], cumulative as Prometheus wants.
    std::vector<int64_t> cumulative_counts() const;
    int64_t count() const { return count_; }
    double sum() const { return sum_; }

private:
    std::vector<double> upper_bounds_;
    std::vector<int64_t> counts_;  // per bucket, last = above every bound
    int64_t count_ = 0;
    double sum_ = 0;
};

// A label value escaped as the text format wants (\\, \", \n).
std::string prometheus_label_value(std::string_view value);

class ServerMetrics {
public:
    explicit ServerMetrics(std::string model_name);

    // A request left the engine: "stop", "length", "abort" or "error" (vLLM's finished_reason).
    void record_finished(std::string_view finished_reason);
    // Time from the HTTP request's arrival to its last choice's end.
    void record_e2e_latency(double seconds);

    // The exposition text. `stats` is a fresh take_stats() snapshot (or an empty one while the
    // model loads): its gauges are printed and its latency samples folded into the histograms.
    std::string render(const EngineStats& stats);

private:
    std::mutex mutex_;
    std::string labels_;  // model_name="..."
    std::map<std::string, int64_t, std::less<>> finished_;
    Histogram time_to_first_token_, inter_token_latency_, e2e_latency_;
};

}  // namespace fourbit
