#include "bench/compare_runs.h"

#include <fmt/format.h>

#include <map>

#include "util/error.h"

namespace fourbit::bench {

using nlohmann::json;

namespace {

std::string number(const json& value, const char* format = "{:.2f}") {
    if (!value.is_number()) return "-";
    return fmt::format(fmt::runtime(format), value.get<double>());
}

// a / b as "1.54x", or "-" when either is missing or b is zero.
std::string ratio(const json& a, const json& b) {
    if (!a.is_number() || !b.is_number() || b.get<double>() == 0) return "-";
    return fmt::format("{:.2f}x", a.get<double>() / b.get<double>());
}

std::string compare_agentic(const json& a, const std::string& a_name, const json& b,
                            const std::string& b_name) {
    std::map<std::string, json> b_tasks;
    for (const json& task : b.at("tasks")) b_tasks[task.at("id").get<std::string>()] = task;
    std::string out = fmt::format("A = {}, B = {}\n\n", a_name, b_name);
    out +=
        "| task | A wall (s) | B wall (s) | speed-up (A/B) | A tokens | B tokens | A decode t/s | "
        "B decode t/s |\n|:--|--:|--:|--:|--:|--:|--:|--:|\n";
    for (const json& task : a.at("tasks")) {
        const std::string id = task.at("id");
        auto other = b_tasks.find(id);
        if (other == b_tasks.end()) {
            out += fmt::format("| {} | {} | (not in B) | | {} | | {} | |\n", id,
                               number(task["wall_s"]), task["completion_tokens"].dump(),
                               number(task["decode_tps"]));
            continue;
        }
        const json& o = other->second;
        out +=
            fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", id, number(task["wall_s"]),
                        number(o["wall_s"]), ratio(task["wall_s"], o["wall_s"]),
                        task["completion_tokens"].dump(), o["completion_tokens"].dump(),
                        number(task["decode_tps"]), number(o["decode_tps"]));
    }
    const json& ta = a.at("totals");
    const json& tb = b.at("totals");
    out += "\n| total | A | B | A/B |\n|:--|--:|--:|--:|\n";
    out += fmt::format("| whole set (s) | {} | {} | {} |\n", number(ta["wall_s"], "{:.1f}"),
                       number(tb["wall_s"], "{:.1f}"), ratio(ta["wall_s"], tb["wall_s"]));
    out += fmt::format("| completion tokens | {} | {} | {} |\n", ta["completion_tokens"].dump(),
                       tb["completion_tokens"].dump(),
                       ratio(ta["completion_tokens"], tb["completion_tokens"]));
    out += fmt::format("| average decode t/s | {} | {} | {} |\n", number(ta["average_decode_tps"]),
                       number(tb["average_decode_tps"]),
                       ratio(ta["average_decode_tps"], tb["average_decode_tps"]));
    out += fmt::format("| peak decode t/s | {} | {} | {} |\n", number(ta["peak_decode_tps"]),
                       number(tb["peak_decode_tps"]),
                       ratio(ta["peak_decode_tps"], tb["peak_decode_tps"]));
    return out;
}

// The key of a grid cell: the test's coordinates.
std::string cell_key(const json& cell) {
    return fmt::format(
        "{}|{}|{}|{}|{}", cell.at("prompt_size").get<int64_t>(),
        cell.at("response_size").get<int64_t>(), cell.at("context_size").get<int64_t>(),
        cell.at("concurrency").get<int64_t>(), cell.at("is_context_prefill_phase").get<bool>());
}

std::string compare_grid(const json& a, const std::string& a_name, const json& b,
                         const std::string& b_name) {
    std::map<std::string, json> b_cells;
    for (const json& cell : b.at("benchmarks")) b_cells[cell_key(cell)] = cell;
    std::string out = fmt::format("A = {}, B = {}\n\n", a_name, b_name);
    out +=
        "| test | A t/s | B t/s | B/A | A ttfr (ms) | B ttfr (ms) |\n"
        "|:--|--:|--:|--:|--:|--:|\n";
    const auto mean = [](const json& metric) {
        return metric.is_null() ? json(nullptr) : metric.at("mean");
    };
    for (const json& cell : a.at("benchmarks")) {
        auto other = b_cells.find(cell_key(cell));
        const json none = json::object();
        const json& o = other == b_cells.end() ? none : other->second;
        const int64_t depth = cell.at("context_size").get<int64_t>();
        const bool ctx = cell.at("is_context_prefill_phase").get<bool>();
        const std::string suffix =
            fmt::format("{}{}", depth > 0 ? fmt::format(" @ d{}", depth) : "",
                        fmt::format(" (c{})", cell.at("concurrency").get<int64_t>()));
        const std::string pp_name =
            ctx ? "ctx_pp" : fmt::format("pp{}", cell.at("prompt_size").get<int64_t>());
        // tg rows carry their prompt size: several cells share a tg name.
        const std::string tg_name =
            ctx ? "ctx_tg"
                : fmt::format("tg{} [pp{}]", cell.at("response_size").get<int64_t>(),
                              cell.at("prompt_size").get<int64_t>());
        const json a_pp = mean(cell["pp_throughput"]),
                   b_pp = mean(o.value("pp_throughput", json(nullptr)));
        const json a_tg = mean(cell["tg_throughput"]),
                   b_tg = mean(o.value("tg_throughput", json(nullptr)));
        out += fmt::format("| {}{} | {} | {} | {} | {} | {} |\n", pp_name, suffix, number(a_pp),
                           number(b_pp), ratio(b_pp, a_pp), number(mean(cell["ttfr"])),
                           number(mean(o.value("ttfr", json(nullptr)))));
        out += fmt::format("| {}{} | {} | {} | {} | | |\n", tg_name, suffix, number(a_tg),
                           number(b_tg), ratio(b_tg, a_tg));
    }
    return out;
}

}  // namespace

std::string result_kind(const json& result) {
    if (!result.is_object()) return "";
    if (result.contains("kind") && result["kind"].is_string()) return result["kind"];
    // llama-benchy's own JSON: the same grid fields, without "kind".
    return result.contains("benchmarks") && result["benchmarks"].is_array() ? "grid" : "";
}

std::string compare_markdown(const json& a, const std::string& a_name, const json& b,
                             const std::string& b_name) {
    const std::string a_kind = result_kind(a);
    const std::string b_kind = result_kind(b);
    if (a_kind != "grid" && a_kind != "agentic") {
        fail("--compare {}: not a fourbit bench result (\"kind\" is not grid or agentic)", a_name);
    }
    if (b_kind != a_kind) {
        fail("--compare: {} is a {} result but {} is {}", a_name, a_kind, b_name,
             b_kind.empty() ? "not a fourbit bench result" : "a " + b_kind + " result");
    }
    try {
        return a_kind == "agentic" ? compare_agentic(a, a_name, b, b_name)
                                   : compare_grid(a, a_name, b, b_name);
    } catch (const nlohmann::json::exception& error) {
        fail("--compare {} {}: a result is missing a field ({})", a_name, b_name, error.what());
    }
}

}  // namespace fourbit::bench
