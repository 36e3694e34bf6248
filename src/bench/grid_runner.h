// The serving benchmark grid, in llama-benchy's loop order (depth -> pp -> tg -> concurrency,
// runs inside) and request shapes (docs/peers.md §2.1): depth as a system message, the prompt
// as a user message, streamed with usage and token ids, max_tokens = tg.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench/api_client.h"
#include "bench/prose_prompts.h"
#include "bench/stream_metrics.h"

namespace fourbit::bench {

struct GridOptions {
    std::string model;  // sent as "model"
    std::vector<int64_t> prompt_sizes{512};
    std::vector<int64_t> response_sizes{128};
    std::vector<int64_t> depths{0};
    std::vector<int64_t> concurrencies{1};
    int runs = 3;
    std::string latency_mode = "api";  // api | generation | none
    bool no_cache = false;             // unique prompts, cache_prompt: false
    bool prefix_caching = false;       // at depth > 0: load the context, then the prompt on it
    bool warmup = true;                // one unrecorded run before each cell's runs
    // Picks the prompts. NOTE: a fixed seed repeats the same prompts run after run, which a
    // server's prefix cache then answers without prefill; 0 (the default) draws a fresh seed.
    uint64_t seed = 0;
};
// An Error naming the flag when a list is empty or holds a non-positive size.
void validate(const GridOptions& options);

// One cell of the grid: llama-benchy's BenchmarkRun. Times in ms, rates in tokens/s. The
// "total" figures are batch totals when concurrency > 1 and per-request figures otherwise.
struct CellResult {
    int64_t concurrency = 1, depth = 0, prompt_size = 0, response_size = 0;
    bool context_phase = false;  // the context-load half of a prefix-caching cell
    std::optional<Summary> prefill_tps, prefill_req_tps, decode_tps, decode_req_tps;
    std::optional<Summary> peak_tps, peak_req_tps, ttfr_ms, est_ppt_ms, e2e_ttft_ms;
    int64_t expected_prompt_tokens = 0;        // what the prompt was built for
    std::vector<int64_t> usage_prompt_tokens;  // the server's usage, one per request
    std::vector<int64_t> generated_tokens;     // one per request
    bool tokens_from_ids = true;               // false: counted from chunks (see token_times)
    int64_t failed_requests = 0;
    std::vector<std::string> errors;  // the first few
    // Per run: [seconds since its first token, tokens/s in the trailing second].
    std::vector<std::vector<std::pair<double, double>>> throughput_series;
};

struct GridReport {
    std::string base_url, model, timestamp_utc, latency_mode;
    double latency_ms = 0;
    bool prefix_caching = false;
    int64_t max_concurrency = 1;
    PromptCalibration calibration;
    uint64_t seed = 0;  // the one used, to repeat a run's prompts
    std::vector<CellResult> cells;
    // Every request the benchmark sent (probes and warmups included) and the prompt tokens the
    // server reported for them: checkable against the server's own counters.
    int64_t requests_sent = 0;
    int64_t usage_prompt_tokens_sent = 0;
};

GridReport run_grid(const Endpoint& endpoint, const GridOptions& options);

struct CellCoordinates {
    int64_t concurrency = 1, depth = 0, prompt_size = 0, response_size = 0;
    bool context_phase = false;
};
// A cell's figures from its recorded runs (one batch of `concurrency` streams per run), as
// llama-benchy aggregates them: per-request figures pooled over runs, batch totals one per run,
// the "total" columns being the batch totals when concurrency > 1. Failed requests are counted
// and left out.
CellResult summarize_cell(const CellCoordinates& where,
                          const std::vector<std::vector<RecordedStream>>& runs, double latency_s,
                          int64_t expected_prompt_tokens);

}  // namespace fourbit::bench
