#include "bench/grid_runner.h"

#include <fmt/chrono.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <thread>

#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace fourbit::bench {

using nlohmann::json;

namespace {

// Characters of the nested calibration probes: long enough that the per-character rate
// dominates the template's overhead, short enough for any context length.
constexpr size_t kShortProbeChars = 1000;
constexpr size_t kLongProbeChars = 4000;
constexpr const char* kContextLoadUserMessage = ".";  // some servers reject empty user content
constexpr int kLatencyProbes = 3;
constexpr size_t kErrorsKept = 3;

json message(const char* role, const std::string& content) {
    return {{"role", role}, {"content", content}};
}

json messages(const std::string& context, const std::string& prompt) {
    json out = json::array();
    if (!context.empty()) out.push_back(message("system", context));
    out.push_back(message("user", prompt.empty() ? kContextLoadUserMessage : prompt));
    return out;
}

struct Prompt {
    std::string context, user;
};

// Shared by the threads of a batch: counts every request and the prompt tokens it was charged.
struct SentCounter {
    std::atomic<int64_t> requests{0};
    std::atomic<int64_t> prompt_tokens{0};
    void add(int64_t usage_prompt_tokens) {
        requests += 1;
        prompt_tokens += usage_prompt_tokens;
    }
};

GridOptions with_seed(GridOptions options) {
    while (options.seed == 0)
        options.seed = (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
    return options;
}

class GridRunner {
public:
    GridRunner(const Endpoint& endpoint, const GridOptions& options)
        : endpoint_(endpoint),
          options_(with_seed(options)),
          client_(endpoint),
          prose_(embedded_prose(), options_.seed),
          token_rng_(options_.seed + 1) {}

    GridReport run();

private:
    int64_t probe_prompt_tokens(const json& probe_messages);
    bool tokenize_prose();
    std::string text_of_tokens(size_t start, int64_t n_tokens);
    std::string prose_text(int64_t n_tokens);
    void calibrate_by_tokens();
    void calibrate_by_characters();
    double measure_latency_s();
    std::vector<RecordedStream> run_batch(const std::vector<json>& bodies);
    json stream_body(const json& chat_messages, int64_t max_tokens) const;
    void run_cell(int64_t depth, int64_t pp, int64_t tg, int64_t concurrency, Progress& progress);

    Endpoint endpoint_;
    GridOptions options_;
    ApiClient client_;
    ProseSource prose_;
    std::mt19937_64 token_rng_;
    std::vector<int32_t> prose_tokens_;  // the prose in the server's tokens, when it can tell
    PromptCalibration calibration_;
    double latency_s_ = 0;
    SentCounter sent_;
    std::vector<std::unique_ptr<ApiClient>> batch_clients_;  // one per concurrent request, reused
    GridReport report_;
};

int64_t GridRunner::probe_prompt_tokens(const json& probe_messages) {
    const json answer = client_.post_json(
        "/chat/completions",
        {{"model", options_.model}, {"messages", probe_messages}, {"max_tokens", 1}});
    const json* tokens = nullptr;
    if (answer.contains("usage") && answer["usage"].is_object()) {
        auto it = answer["usage"].find("prompt_tokens");
        if (it != answer["usage"].end() && it->is_number_integer()) tokens = &*it;
    }
    if (!tokens) {
        fail("{}: the answer has no usage.prompt_tokens, which prompt sizing needs",
             client_.url("/chat/completions"));
    }
    sent_.add(tokens->get<int64_t>());
    return tokens->get<int64_t>();
}

// The prose in the server's own token ids, through its /tokenize (vLLM and fourbit serve it at
// the root); false when the server has none.
bool GridRunner::tokenize_prose() {
    try {
        const json answer = client_.post_json(
            "/tokenize", {{"model", options_.model}, {"prompt", embedded_prose()}}, false);
        if (!answer.contains("tokens") || !answer["tokens"].is_array() ||
            answer["tokens"].size() < 1000) {
            return false;
        }
        prose_tokens_ = answer["tokens"].get<std::vector<int32_t>>();
        return true;
    } catch (const std::exception& error) {
        spdlog::info("bench: no usable /tokenize ({}); prompts are sized by characters",
                     error.what());
        return false;
    }
}

// `n_tokens` of the prose's tokens from `start` (wrapping around), as text.
std::string GridRunner::text_of_tokens(size_t start, int64_t n_tokens) {
    std::vector<int32_t> ids;
    ids.reserve(size_t(n_tokens));
    for (int64_t i = 0; i < n_tokens; ++i)
        ids.push_back(prose_tokens_[(start + size_t(i)) % prose_tokens_.size()]);
    const json answer =
        client_.post_json("/detokenize", {{"model", options_.model}, {"tokens", ids}}, false);
    if (!answer.contains("prompt") || !answer["prompt"].is_string()) {
        fail("{}: the answer has no \"prompt\" text", client_.url("/detokenize", false));
    }
    return answer["prompt"];
}

// About `n_tokens` of prose from a random place, as the server will count it.
std::string GridRunner::prose_text(int64_t n_tokens) {
    if (n_tokens <= 0) return {};
    if (prose_tokens_.empty()) return prose_.slice(calibration_.chars_for(n_tokens));
    const size_t start =
        std::uniform_int_distribution<size_t>(0, prose_tokens_.size() - 1)(token_rng_);
    return text_of_tokens(start, n_tokens);
}

// Prompts are cut from the token ids, so only the chat template's overhead is left to measure:
// a user message and a system message of known token counts. These probes are also the warmup
// llama-benchy does before measuring.
void GridRunner::calibrate_by_tokens() {
    constexpr int64_t kProbeTokens = 256;
    const std::string text = text_of_tokens(0, kProbeTokens);
    calibration_.method = "tokenize";
    calibration_.tokens_per_char = double(prose_tokens_.size()) / double(embedded_prose().size());
    calibration_.user_overhead =
        std::max<int64_t>(0, probe_prompt_tokens(messages("", text)) - kProbeTokens);
    calibration_.context_overhead =
        std::max<int64_t>(0, probe_prompt_tokens(messages(text, "")) - kProbeTokens);
}

// Without /tokenize: two nested user prompts give the tokens per character and the user template
// overhead; a system prompt with a one-character user message gives the context overhead.
void GridRunner::calibrate_by_characters() {
    const std::string short_text = prose_.prefix(kShortProbeChars);
    const std::string long_text = prose_.prefix(kLongProbeChars);
    const int64_t short_tokens = probe_prompt_tokens(messages("", short_text));
    const int64_t long_tokens = probe_prompt_tokens(messages("", long_text));
    const int64_t context_tokens = probe_prompt_tokens(messages(long_text, ""));
    if (long_tokens <= short_tokens) {
        fail(
            "{}: usage.prompt_tokens does not grow with the prompt ({} tokens for {} "
            "characters, {} for {}); cannot size prompts",
            client_.url("/chat/completions"), short_tokens, short_text.size(), long_tokens,
            long_text.size());
    }
    calibration_.method = "characters";
    calibration_.tokens_per_char =
        double(long_tokens - short_tokens) / double(long_text.size() - short_text.size());
    const auto text_tokens = [&](const std::string& text) {
        return std::llround(calibration_.tokens_per_char * double(text.size()));
    };
    calibration_.user_overhead = std::max<int64_t>(0, short_tokens - text_tokens(short_text));
    calibration_.context_overhead = std::max<int64_t>(0, context_tokens - text_tokens(long_text));
}

double GridRunner::measure_latency_s() {
    if (options_.latency_mode == "none") return 0;
    double sum = 0;
    for (int i = 0; i < kLatencyProbes; ++i) {
        sum += options_.latency_mode == "api" ? client_.models_latency_s()
                                              : client_.generation_latency_s(options_.model);
    }
    return sum / kLatencyProbes;
}

json GridRunner::stream_body(const json& chat_messages, int64_t max_tokens) const {
    json body = {{"model", options_.model},  {"messages", chat_messages},
                 {"max_tokens", max_tokens}, {"stream", true},
                 {"return_token_ids", true}, {"stream_options", {{"include_usage", true}}}};
    if (options_.no_cache) body["cache_prompt"] = false;
    return body;
}

// One request per thread, all started together, each on its own (kept-alive) connection.
std::vector<RecordedStream> GridRunner::run_batch(const std::vector<json>& bodies) {
    while (batch_clients_.size() < bodies.size()) {
        batch_clients_.push_back(std::make_unique<ApiClient>(endpoint_));
    }
    std::vector<RecordedStream> streams(bodies.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < bodies.size(); ++i) {
        threads.emplace_back([this, &bodies, &streams, i] {
            streams[i] = batch_clients_[i]->stream_chat(bodies[i]);
        });
    }
    for (std::thread& thread : threads) thread.join();
    for (const RecordedStream& stream : streams) sent_.add(stream.usage_prompt_tokens);
    return streams;
}

void GridRunner::run_cell(int64_t depth, int64_t pp, int64_t tg, int64_t concurrency,
                          Progress& progress) {
    // As llama-benchy's prompt adaptation: the template's overhead comes off the prompt at
    // depth 0 and off the context otherwise, so the server sees about pp + depth tokens.
    const int64_t suffix_tokens =
        options_.no_cache ? std::llround(33 * calibration_.tokens_per_char) : 0;
    const int64_t user_tokens =
        depth == 0 ? std::max<int64_t>(1, pp - calibration_.user_overhead) : pp;
    const int64_t context_tokens =
        depth == 0 ? 0 : std::max<int64_t>(1, depth - calibration_.context_overhead);
    const bool two_phase = options_.prefix_caching && depth > 0;
    std::vector<std::vector<RecordedStream>> context_runs, prompt_runs;
    const int total_runs = options_.runs + (options_.warmup ? 1 : 0);
    for (int run = 0; run < total_runs; ++run) {
        const bool is_warmup = options_.warmup && run == 0;
        std::vector<Prompt> prompts;
        for (int64_t i = 0; i < concurrency; ++i) {
            Prompt prompt;
            prompt.context = prose_text(context_tokens);
            prompt.user = prose_text(std::max<int64_t>(1, user_tokens - suffix_tokens));
            if (options_.no_cache) prompt.user += prose_.unique_suffix();
            prompts.push_back(std::move(prompt));
        }
        if (two_phase) {
            std::vector<json> bodies;
            for (const Prompt& p : prompts)
                bodies.push_back(stream_body(messages(p.context, ""), tg));
            auto streams = run_batch(bodies);
            progress.advance(streams.size());
            if (!is_warmup) context_runs.push_back(std::move(streams));
        }
        std::vector<json> bodies;
        for (const Prompt& p : prompts)
            bodies.push_back(stream_body(messages(p.context, p.user), tg));
        auto streams = run_batch(bodies);
        progress.advance(streams.size());
        if (!is_warmup) prompt_runs.push_back(std::move(streams));
    }
    if (two_phase) {
        report_.cells.push_back(summarize_cell({concurrency, depth, pp, tg, true}, context_runs,
                                               latency_s_, context_tokens));
        report_.cells.push_back(summarize_cell({concurrency, depth, pp, tg, false}, prompt_runs,
                                               latency_s_, user_tokens));
    } else {
        report_.cells.push_back(summarize_cell({concurrency, depth, pp, tg, false}, prompt_runs,
                                               latency_s_, user_tokens + context_tokens));
    }
}

GridReport GridRunner::run() {
    report_.base_url = client_.url("");
    report_.model = options_.model;
    report_.latency_mode = options_.latency_mode;
    report_.prefix_caching = options_.prefix_caching;
    report_.seed = options_.seed;
    report_.max_concurrency =
        *std::max_element(options_.concurrencies.begin(), options_.concurrencies.end());
    if (tokenize_prose()) {
        calibrate_by_tokens();
    } else {
        calibrate_by_characters();
    }
    spdlog::info(
        "bench: prompts sized by {}: {:.3f} tokens per character; the chat template "
        "adds {} tokens (user), {} (system + user)",
        calibration_.method, calibration_.tokens_per_char, calibration_.user_overhead,
        calibration_.context_overhead);
    report_.calibration = calibration_;
    latency_s_ = measure_latency_s();
    report_.latency_ms = latency_s_ * 1000;
    spdlog::info("bench: latency ({}) {:.2f} ms", options_.latency_mode, report_.latency_ms);

    uint64_t total_requests = 0;
    const uint64_t runs = options_.runs + (options_.warmup ? 1 : 0);
    for (int64_t depth : options_.depths) {
        const uint64_t phases = options_.prefix_caching && depth > 0 ? 2 : 1;
        for (int64_t concurrency : options_.concurrencies) {
            total_requests += options_.prompt_sizes.size() * options_.response_sizes.size() * runs *
                              phases * uint64_t(concurrency);
        }
    }
    Progress progress("bench", total_requests, "requests");
    for (int64_t depth : options_.depths) {
        for (int64_t pp : options_.prompt_sizes) {
            for (int64_t tg : options_.response_sizes) {
                for (int64_t concurrency : options_.concurrencies) {
                    run_cell(depth, pp, tg, concurrency, progress);
                }
            }
        }
    }
    progress.finish();
    bool warned = false;
    for (const CellResult& cell : report_.cells) {
        if (!cell.tokens_from_ids && !warned) {
            spdlog::warn(
                "bench: the server sent no token_ids; tokens were counted as chunks, which "
                "undercounts when a chunk holds several tokens (speculative decoding)");
            warned = true;
        }
        if (cell.failed_requests > 0) {
            spdlog::warn("bench: {} request(s) failed in pp{} tg{} d{} c{}: {}",
                         cell.failed_requests, cell.prompt_size, cell.response_size, cell.depth,
                         cell.concurrency, cell.errors.front());
        }
    }
    report_.timestamp_utc = fmt::format("{:%Y-%m-%d %H:%M:%SZ}", fmt::gmtime(std::time(nullptr)));
    report_.requests_sent = sent_.requests.load();
    report_.usage_prompt_tokens_sent = sent_.prompt_tokens.load();
    return report_;
}

}  // namespace

CellResult summarize_cell(const CellCoordinates& where,
                          const std::vector<std::vector<RecordedStream>>& runs, double latency_s,
                          int64_t expected_prompt_tokens) {
    CellResult cell;
    cell.concurrency = where.concurrency;
    cell.depth = where.depth;
    cell.prompt_size = where.prompt_size;
    cell.response_size = where.response_size;
    cell.context_phase = where.context_phase;
    cell.expected_prompt_tokens = expected_prompt_tokens;
    const int64_t concurrency = where.concurrency;
    std::vector<double> prefill_req, decode_req, prefill_total, decode_total, peak_total, peak_req;
    std::vector<double> ttfr, est_ppt, e2e_ttft;
    for (const std::vector<RecordedStream>& batch : runs) {
        for (const RecordedStream& stream : batch) {
            if (stream.error.empty()) continue;
            cell.failed_requests += 1;
            if (cell.errors.size() < kErrorsKept) cell.errors.push_back(stream.error);
        }
        const BatchMetrics metrics = batch_metrics(batch, latency_s, expected_prompt_tokens);
        if (metrics.prefill_total_tps) prefill_total.push_back(*metrics.prefill_total_tps);
        if (metrics.decode_total_tps) decode_total.push_back(*metrics.decode_total_tps);
        if (metrics.peak_total_tps) peak_total.push_back(*metrics.peak_total_tps);
        std::vector<double> all_times;
        for (const RecordedStream& stream : batch) {
            if (!stream.error.empty()) continue;
            cell.usage_prompt_tokens.push_back(stream.usage_prompt_tokens);
            const TokenTimes times = token_times(stream);
            all_times.insert(all_times.end(), times.times_s.begin(), times.times_s.end());
        }
        cell.throughput_series.push_back(throughput_series(std::move(all_times)));
        for (const RequestMetrics& request : metrics.requests) {
            cell.generated_tokens.push_back(request.generated_tokens);
            cell.tokens_from_ids = cell.tokens_from_ids && request.tokens_from_ids;
            if (request.prefill_tps) prefill_req.push_back(*request.prefill_tps);
            if (request.decode_tps) decode_req.push_back(*request.decode_tps);
            if (request.peak_tps) peak_req.push_back(*request.peak_tps);
            if (request.ttfr_s) ttfr.push_back(*request.ttfr_s * 1000);
            if (request.est_ppt_s) est_ppt.push_back(*request.est_ppt_s * 1000);
            if (request.e2e_ttft_s) e2e_ttft.push_back(*request.e2e_ttft_s * 1000);
        }
    }
    cell.prefill_req_tps = summarize(prefill_req);
    cell.decode_req_tps = summarize(decode_req);
    cell.prefill_tps = concurrency > 1 ? summarize(prefill_total) : cell.prefill_req_tps;
    cell.decode_tps = concurrency > 1 ? summarize(decode_total) : cell.decode_req_tps;
    cell.peak_tps = summarize(peak_total);
    cell.peak_req_tps = summarize(peak_req);
    cell.ttfr_ms = summarize(ttfr);
    cell.est_ppt_ms = summarize(est_ppt);
    cell.e2e_ttft_ms = summarize(e2e_ttft);
    return cell;
}

void validate(const GridOptions& options) {
    const auto check = [](const std::vector<int64_t>& values, const char* flag, int64_t least) {
        if (values.empty()) fail("{}: give at least one value", flag);
        for (int64_t v : values) {
            if (v < least) fail("{}: {} is not allowed (at least {})", flag, v, least);
        }
    };
    check(options.prompt_sizes, "--pp", 1);
    check(options.response_sizes, "--tg", 1);
    check(options.depths, "--depth", 0);
    check(options.concurrencies, "--concurrency", 1);
    if (options.runs < 1) fail("--runs: {} is not allowed (at least 1)", options.runs);
    if (options.latency_mode != "api" && options.latency_mode != "generation" &&
        options.latency_mode != "none") {
        fail("--latency-mode: {} is not one of api, generation, none", options.latency_mode);
    }
}

GridReport run_grid(const Endpoint& endpoint, const GridOptions& options) {
    validate(options);
    return GridRunner(endpoint, options).run();
}

}  // namespace fourbit::bench
