#include "bench/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "bench/compare_runs.h"
#include "util/error.h"

namespace fourbit::bench {

using nlohmann::json;

namespace {

constexpr double kPanelWidth = 400, kPanelHeight = 300, kMarginLeft = 64, kMarginTop = 76;
constexpr double kPlotWidth = 300, kPlotHeight = 200;
constexpr size_t kMaxSeries = 10;
const char* const kColors[kMaxSeries] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

struct Point {
    double x, y, err;
};
struct Series {
    std::string label;
    std::vector<Point> points;
};

// A round step giving about five ticks from 0 to `top`.
double tick_step(double top) {
    const double raw = top / 5;
    const double power = std::pow(10, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
        if (raw <= m * power) return m * power;
    }
    return 10 * power;
}

std::string escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '<')
            out += "&lt;";
        else if (c == '>')
            out += "&gt;";
        else if (c == '&')
            out += "&amp;";
        else
            out += c;
    }
    return out;
}

// One panel at (left, top): axes, ticks, lines with markers and error bars, legend. `log_x`
// puts x on a log2 scale with a tick at every distinct x (prompt lengths).
std::string panel(double left, double top, const std::string& title, const std::string& x_label,
                  const std::string& y_label, const std::vector<Series>& all_series, bool log_x,
                  bool markers) {
    std::string out = fmt::format("<g transform=\"translate({},{})\">\n", left, top);
    out += fmt::format(
        "<text x=\"{}\" y=\"-30\" text-anchor=\"middle\" font-size=\"14\" "
        "font-weight=\"bold\">{}</text>\n",
        kPlotWidth / 2, escape(title));
    std::vector<double> xs;
    double y_top = 0;
    for (const Series& s : all_series) {
        for (const Point& p : s.points) {
            xs.push_back(p.x);
            y_top = std::max(y_top, p.y + p.err);
        }
    }
    if (xs.empty()) {
        out += fmt::format(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">no "
            "data</text></g>\n",
            kPlotWidth / 2, kPlotHeight / 2);
        return out;
    }
    std::sort(xs.begin(), xs.end());
    xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
    const auto fx = [&](double x) { return log_x ? std::log2(std::max(x, 1.0)) : x; };
    double x_lo = fx(xs.front()), x_hi = fx(xs.back());
    if (!log_x) x_lo = 0;
    if (x_hi - x_lo < 1e-9) {
        x_lo -= 1;
        x_hi += 1;
    }
    const double step = tick_step(y_top > 0 ? y_top * 1.05 : 1);
    const double y_max = std::ceil((y_top > 0 ? y_top * 1.05 : 1) / step) * step;
    const auto px = [&](double x) { return (fx(x) - x_lo) / (x_hi - x_lo) * kPlotWidth; };
    const auto py = [&](double y) { return kPlotHeight - y / y_max * kPlotHeight; };
    out += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
                       kPlotWidth, kPlotHeight);
    for (double y = 0; y <= y_max + step / 2; y += step) {
        out += fmt::format(
            "<line x1=\"0\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
            "<text x=\"-6\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"11\">{:g}</text>\n",
            kPlotWidth, py(y), py(y), py(y) + 4, y);
    }
    std::vector<double> x_ticks = xs;
    if (!log_x) {
        x_ticks.clear();
        const double x_step = tick_step(x_hi);
        for (double x = 0; x <= x_hi + x_step / 2; x += x_step) x_ticks.push_back(x);
    }
    for (double x : x_ticks) {
        out += fmt::format(
            "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{:g}</text>\n",
            px(x), kPlotHeight + 16, x);
    }
    out +=
        fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text>\n",
                    kPlotWidth / 2, kPlotHeight + 34, escape(x_label));
    out += fmt::format(
        "<text transform=\"translate(-46,{}) rotate(-90)\" text-anchor=\"middle\" "
        "font-size=\"12\">{}</text>\n",
        kPlotHeight / 2, escape(y_label));
    for (size_t i = 0; i < all_series.size() && i < kMaxSeries; ++i) {
        const Series& s = all_series[i];
        const char* color = kColors[i];
        std::string path;
        for (const Point& p : s.points) {
            path += fmt::format("{}{:.1f},{:.1f} ", path.empty() ? "M" : "L", px(p.x), py(p.y));
        }
        out += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"/>\n",
                           path, color, markers ? 2 : 1.2);
        if (markers) {
            for (const Point& p : s.points) {
                if (p.err > 0) {  // mean ± std, clipped to the axes
                    out += fmt::format(
                        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" "
                        "y2=\"{2:.1f}\" stroke=\"{3}\"/>\n",
                        px(p.x), py(std::max(0.0, p.y - p.err)), py(std::min(y_max, p.y + p.err)),
                        color);
                }
                out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n",
                                   px(p.x), py(p.y), color);
            }
        }
        const double ly = kPlotHeight + 50 + 14 * double(i);
        out += fmt::format(
            "<line x1=\"0\" x2=\"18\" y1=\"{0}\" y2=\"{0}\" stroke=\"{1}\" "
            "stroke-width=\"3\"/><text x=\"24\" y=\"{2}\" font-size=\"11\">{3}</text>\n",
            ly - 4, color, ly, escape(s.label));
    }
    if (all_series.size() > kMaxSeries) {
        out += fmt::format(
            "<text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#555\">(the first {} "
            "of {} shown)</text>\n",
            kPlotHeight + 50 + 14 * double(kMaxSeries), kMaxSeries, all_series.size());
    }
    out += "</g>\n";
    return out;
}

std::string series_label(int64_t depth, int64_t concurrency, bool several) {
    std::string label = fmt::format("depth {}", depth);
    if (several) label += fmt::format(", c{}", concurrency);
    return label;
}

}  // namespace

std::string grid_svg(const json& grid) {
    if (result_kind(grid) != "grid") {
        fail("--plot: the result is not a grid result");
    }
    const bool several = grid.value("max_concurrency", 1) > 1;
    // (depth, concurrency) -> prompt size -> rates of its cells (several tg values are averaged).
    std::map<std::pair<int64_t, int64_t>, std::map<int64_t, std::vector<std::pair<double, double>>>>
        prefill, decode;
    std::vector<Series> time_series;
    size_t measured = 0;
    for (const json& cell : grid["benchmarks"]) {
        if (cell.value("is_context_prefill_phase", false)) continue;
        const auto key =
            std::make_pair(cell["context_size"].get<int64_t>(), cell["concurrency"].get<int64_t>());
        const int64_t pp = cell["prompt_size"].get<int64_t>();
        if (cell["pp_throughput"].is_object()) {
            prefill[key][pp].emplace_back(cell["pp_throughput"]["mean"],
                                          cell["pp_throughput"]["std"]);
            measured += 1;
        }
        if (cell["tg_throughput"].is_object()) {
            decode[key][pp].emplace_back(cell["tg_throughput"]["mean"],
                                         cell["tg_throughput"]["std"]);
        }
        const json& runs = cell.value("throughput_over_time", json::array());
        if (!runs.empty() && !runs[0].empty()) {
            Series s;
            s.label = fmt::format("pp{} tg{} d{}{}", pp, cell["response_size"].get<int64_t>(),
                                  key.first, several ? fmt::format(" c{}", key.second) : "");
            for (const json& point : runs[0]) s.points.push_back({point[0], point[1], 0});
            time_series.push_back(std::move(s));
        }
    }
    if (measured == 0) fail("--plot: the grid result holds no measured cell");
    const auto to_series = [several](const auto& by_key) {
        std::vector<Series> out;
        for (const auto& [key, by_pp] : by_key) {
            Series s;
            s.label = series_label(key.first, key.second, several);
            for (const auto& [pp, rates] : by_pp) {
                double mean = 0, err = 0;
                for (const auto& [m, e] : rates) {
                    mean += m / double(rates.size());
                    err = std::max(err, e);
                }
                s.points.push_back({double(pp), mean, err});
            }
            out.push_back(std::move(s));
        }
        return out;
    };
    const double width = 3 * kPanelWidth + 40;
    const double height = kMarginTop + kPlotHeight + 50 + 14 * double(kMaxSeries + 1) + 10;
    std::string out = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
        "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\">\n<rect width=\"100%\" "
        "height=\"100%\" fill=\"white\"/>\n",
        width, height);
    out += fmt::format(
        "<text x=\"10\" y=\"18\" font-size=\"12\" fill=\"#555\">{} | {} | {} | "
        "latency {} {:.2f} ms</text>\n",
        escape(grid.value("version", std::string())), escape(grid.value("model", std::string())),
        escape(grid.value("timestamp", std::string())),
        escape(grid.value("latency_mode", std::string())), grid.value("latency_ms", 0.0));
    out += panel(kMarginLeft, kMarginTop, "Prefill", "prompt tokens", "prefill t/s",
                 to_series(prefill), true, true);
    out += panel(kMarginLeft + kPanelWidth, kMarginTop, "Decode", "prompt tokens", "decode t/s",
                 to_series(decode), true, true);
    out += panel(kMarginLeft + 2 * kPanelWidth, kMarginTop, "Throughput, first run of each test",
                 "seconds since first token", "t/s (1-second window)", time_series, false, false);
    out += "</svg>\n";
    return out;
}

}  // namespace fourbit::bench
