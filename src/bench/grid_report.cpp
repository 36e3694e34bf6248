#include "bench/grid_report.h"

#include <fmt/format.h>

#include <vector>

namespace fourbit::bench {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr const char* kTool = "fourbit bench";

ordered_json metric_json(const std::optional<Summary>& summary) {
    if (!summary) return nullptr;
    return {{"mean", summary->mean}, {"std", summary->std}, {"values", summary->values}};
}

ordered_json cell_json(const CellResult& cell) {
    ordered_json out;
    out["concurrency"] = cell.concurrency;
    out["context_size"] = cell.depth;
    out["prompt_size"] = cell.prompt_size;
    out["response_size"] = cell.response_size;
    out["is_context_prefill_phase"] = cell.context_phase;
    out["pp_throughput"] = metric_json(cell.prefill_tps);
    out["pp_req_throughput"] = metric_json(cell.prefill_req_tps);
    out["tg_throughput"] = metric_json(cell.decode_tps);
    out["tg_req_throughput"] = metric_json(cell.decode_req_tps);
    out["peak_throughput"] = metric_json(cell.peak_tps);
    out["peak_req_throughput"] = metric_json(cell.peak_req_tps);
    out["ttfr"] = metric_json(cell.ttfr_ms);
    out["est_ppt"] = metric_json(cell.est_ppt_ms);
    out["e2e_ttft"] = metric_json(cell.e2e_ttft_ms);
    out["expected_prompt_tokens"] = cell.expected_prompt_tokens;
    out["usage_prompt_tokens"] = cell.usage_prompt_tokens;
    out["generated_tokens"] = cell.generated_tokens;
    out["token_count_source"] = cell.tokens_from_ids ? "token_ids" : "chunks";
    out["failed_requests"] = cell.failed_requests;
    out["errors"] = cell.errors;
    ordered_json series = ordered_json::array();
    for (const auto& run : cell.throughput_series) {
        ordered_json points = ordered_json::array();
        for (const auto& [t, v] : run) points.push_back({t, v});
        series.push_back(std::move(points));
    }
    out["throughput_over_time"] = std::move(series);
    return out;
}

struct Row {
    std::string test;
    json tps, tps_req, peak, peak_req, ttfr, est_ppt, e2e_ttft;
};

std::vector<Row> grid_rows(const json& grid) {
    std::vector<Row> rows;
    const bool several = grid.value("max_concurrency", 1) > 1;
    for (const json& cell : grid.at("benchmarks")) {
        const std::string c_suffix =
            several ? fmt::format(" (c{})", cell.at("concurrency").get<int64_t>()) : "";
        const int64_t depth = cell.at("context_size").get<int64_t>();
        std::string pp_name, tg_name;
        if (cell.at("is_context_prefill_phase").get<bool>()) {
            pp_name = fmt::format("ctx_pp @ d{}{}", depth, c_suffix);
            tg_name = fmt::format("ctx_tg @ d{}{}", depth, c_suffix);
        } else {
            const std::string d_suffix = depth > 0 ? fmt::format(" @ d{}", depth) : "";
            pp_name =
                fmt::format("pp{}{}{}", cell.at("prompt_size").get<int64_t>(), d_suffix, c_suffix);
            tg_name = fmt::format("tg{}{}{}", cell.at("response_size").get<int64_t>(), d_suffix,
                                  c_suffix);
        }
        if (!cell.at("pp_throughput").is_null()) {
            rows.push_back({pp_name, cell["pp_throughput"], cell["pp_req_throughput"], nullptr,
                            nullptr, cell["ttfr"], cell["est_ppt"], cell["e2e_ttft"]});
        }
        if (!cell.at("tg_throughput").is_null() || !cell.at("peak_throughput").is_null()) {
            rows.push_back({tg_name, cell["tg_throughput"], cell["tg_req_throughput"],
                            cell["peak_throughput"], cell["peak_req_throughput"], nullptr, nullptr,
                            nullptr});
        }
    }
    return rows;
}

std::string csv_number(const json& metric, const char* key) {
    if (metric.is_null()) return "";
    return fmt::format("{}", metric.at(key).get<double>());
}

}  // namespace

std::string mean_std_text(const json& metric) {
    if (metric.is_null()) return "";
    return fmt::format("{:.2f} ± {:.2f}", metric.at("mean").get<double>(),
                       metric.at("std").get<double>());
}

ordered_json grid_json(const GridReport& report) {
    ordered_json out;
    out["kind"] = "grid";
    out["version"] = kTool;
    out["timestamp"] = report.timestamp_utc;
    out["latency_mode"] = report.latency_mode;
    out["latency_ms"] = report.latency_ms;
    out["model"] = report.model;
    out["prefix_caching_enabled"] = report.prefix_caching;
    out["max_concurrency"] = report.max_concurrency;
    out["base_url"] = report.base_url;
    out["prompt_calibration"] = {{"method", report.calibration.method},
                                 {"tokens_per_char", report.calibration.tokens_per_char},
                                 {"user_overhead", report.calibration.user_overhead},
                                 {"context_overhead", report.calibration.context_overhead}};
    out["seed"] = report.seed;
    out["requests_sent"] = report.requests_sent;
    out["usage_prompt_tokens_sent"] = report.usage_prompt_tokens_sent;
    ordered_json cells = ordered_json::array();
    for (const CellResult& cell : report.cells) cells.push_back(cell_json(cell));
    out["benchmarks"] = std::move(cells);
    return out;
}

std::string grid_markdown(const json& grid) {
    const bool several = grid.value("max_concurrency", 1) > 1;
    const std::string model = grid.value("model", std::string("?"));
    std::string out;
    if (several) {
        out +=
            "| model | test | t/s (total) | t/s (req) | peak t/s | peak t/s (req) | ttfr (ms) | "
            "est_ppt (ms) | e2e_ttft (ms) |\n";
        out += "|:--|--:|--:|--:|--:|--:|--:|--:|--:|\n";
    } else {
        out += "| model | test | t/s | peak t/s | ttfr (ms) | est_ppt (ms) | e2e_ttft (ms) |\n";
        out += "|:--|--:|--:|--:|--:|--:|--:|\n";
    }
    for (const Row& row : grid_rows(grid)) {
        if (several) {
            out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", model, row.test,
                               mean_std_text(row.tps), mean_std_text(row.tps_req),
                               mean_std_text(row.peak), mean_std_text(row.peak_req),
                               mean_std_text(row.ttfr), mean_std_text(row.est_ppt),
                               mean_std_text(row.e2e_ttft));
        } else {
            out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", model, row.test,
                               mean_std_text(row.tps), mean_std_text(row.peak),
                               mean_std_text(row.ttfr), mean_std_text(row.est_ppt),
                               mean_std_text(row.e2e_ttft));
        }
    }
    // llama-benchy's JSON holds its bare version number.
    std::string version = grid.value("version", std::string(kTool));
    if (version.rfind("fourbit", 0) != 0) version = "llama-benchy " + version;
    out += fmt::format("\n{} | date: {} | latency mode: {} ({:.2f} ms)\n", version,
                       grid.value("timestamp", std::string()),
                       grid.value("latency_mode", std::string()), grid.value("latency_ms", 0.0));
    return out;
}

std::string grid_csv(const json& grid) {
    std::string out =
        "model,test_name,t_s_mean,t_s_std,t_s_req_mean,t_s_req_std,peak_ts_mean,peak_ts_std,"
        "peak_ts_req_mean,peak_ts_req_std,ttfr_mean,ttfr_std,est_ppt_mean,est_ppt_std,"
        "e2e_ttft_mean,e2e_ttft_std\n";
    const std::string model = grid.value("model", std::string("?"));
    for (const Row& row : grid_rows(grid)) {
        out += fmt::format("{},{}", model, row.test);
        for (const json* metric : {&row.tps, &row.tps_req, &row.peak, &row.peak_req, &row.ttfr,
                                   &row.est_ppt, &row.e2e_ttft}) {
            out += fmt::format(",{},{}", csv_number(*metric, "mean"), csv_number(*metric, "std"));
        }
        out += "\n";
    }
    return out;
}

}  // namespace fourbit::bench
