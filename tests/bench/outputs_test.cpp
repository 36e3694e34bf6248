// Output of a grid: the JSON (llama-benchy's field names), its Markdown and CSV renderings, the
// comparison tables and the SVG plot, from a hand-built report.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bench/compare_runs.h"
#include "bench/grid_report.h"
#include "bench/svg_plot.h"
#include "util/error.h"

namespace fourbit::bench {
namespace {

using nlohmann::json;

GridReport two_cell_report(int64_t max_concurrency, double scale) {
    GridReport r;
    r.model = "tiny";
    r.latency_mode = "api";
    r.latency_ms = 1.5;
    r.max_concurrency = max_concurrency;
    CellResult a;
    a.prompt_size = 512;
    a.response_size = 32;
    a.prefill_tps = a.prefill_req_tps = summarize({1000 * scale, 1200 * scale});
    a.decode_tps = a.decode_req_tps = summarize({50 * scale, 50 * scale});
    a.peak_tps = summarize({55});
    a.ttfr_ms = summarize({400, 500});
    a.est_ppt_ms = summarize({398.5, 498.5});
    a.e2e_ttft_ms = summarize({400, 500});
    a.throughput_series = {{{0.0, 1.0}, {0.5, 2.0}, {1.2, 3.0}}};
    CellResult b = a;
    b.depth = 4096;
    b.context_phase = true;
    r.cells = {a, b};
    return r;
}

TEST(GridOutput, JsonCarriesLlamaBenchyFields) {
    const json j = grid_json(two_cell_report(1, 1));
    EXPECT_EQ(j["kind"], "grid");
    const json& cell = j["benchmarks"][0];
    for (const char* key :
         {"concurrency", "context_size", "prompt_size", "response_size", "is_context_prefill_phase",
          "pp_throughput", "tg_throughput", "peak_throughput", "ttfr", "est_ppt", "e2e_ttft"}) {
        EXPECT_TRUE(cell.contains(key)) << key;
    }
    EXPECT_DOUBLE_EQ(cell["pp_throughput"]["mean"].get<double>(), 1100);
    EXPECT_DOUBLE_EQ(cell["pp_throughput"]["std"].get<double>(), 100);
    EXPECT_TRUE(cell["pp_req_throughput"].is_object());
}

TEST(GridOutput, MarkdownRowsAreNamedAsLlamaBenchyNamesThem) {
    const std::string md = grid_markdown(grid_json(two_cell_report(1, 1)));
    EXPECT_NE(
        md.find("| model | test | t/s | peak t/s | ttfr (ms) | est_ppt (ms) | e2e_ttft (ms) |"),
        std::string::npos)
        << md;
    EXPECT_NE(md.find("| tiny | pp512 | 1100.00 ± 100.00 |  | 450.00 ± 50.00 | 448.50 ± 50.00 | "
                      "450.00 ± 50.00 |"),
              std::string::npos)
        << md;
    EXPECT_NE(md.find("| tiny | tg32 | 50.00 ± 0.00 | 55.00 ± 0.00 |"), std::string::npos) << md;
    EXPECT_NE(md.find("| ctx_pp @ d4096 |"), std::string::npos) << md;
    const std::string several = grid_markdown(grid_json(two_cell_report(4, 1)));
    EXPECT_NE(several.find("t/s (total) | t/s (req)"), std::string::npos);
    EXPECT_NE(several.find("| pp512 (c1) |"), std::string::npos) << several;
}

TEST(GridOutput, CsvHasOneLinePerRow) {
    const std::string csv = grid_csv(grid_json(two_cell_report(1, 1)));
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5);  // header + 4 rows
    EXPECT_NE(csv.find("tiny,pp512,1100,100,1100,100,,,,,450,50,448.5,50,450,50\n"),
              std::string::npos)
        << csv;
}

TEST(Compare, GridRatiosAndKindChecks) {
    const json a = grid_json(two_cell_report(1, 1));
    const json b = grid_json(two_cell_report(1, 2));
    const std::string table = compare_markdown(a, "a.json", b, "b.json");
    EXPECT_NE(table.find("| pp512 (c1) | 1100.00 | 2200.00 | 2.00x |"), std::string::npos) << table;
    EXPECT_NE(table.find("| tg32 [pp512] (c1) | 50.00 | 100.00 | 2.00x |"), std::string::npos)
        << table;
    json agentic = {{"kind", "agentic"}};
    EXPECT_THROW(compare_markdown(a, "a.json", agentic, "c.json"), Error);
    EXPECT_THROW(compare_markdown(json::object(), "a.json", a, "b.json"), Error);
}

TEST(Compare, AgenticSpeedUpIsWallRatio) {
    const auto report = [](double wall, int64_t tokens) {
        return json{{"kind", "agentic"},
                    {"tasks",
                     {{{"id", "trap"},
                       {"wall_s", wall},
                       {"completion_tokens", tokens},
                       {"decode_tps", tokens / wall}}}},
                    {"totals",
                     {{"wall_s", wall},
                      {"completion_tokens", tokens},
                      {"average_decode_tps", tokens / wall},
                      {"peak_decode_tps", tokens / wall}}}};
    };
    const std::string table = compare_markdown(report(14.7, 718), "sibling", report(1.0, 44), "ac");
    EXPECT_NE(table.find("| trap | 14.70 | 1.00 | 14.70x | 718 | 44 |"), std::string::npos)
        << table;
    EXPECT_NE(table.find("| whole set (s) | 14.7 | 1.0 | 14.70x |"), std::string::npos) << table;
}

TEST(Plot, SvgHasThreePanelsAndAllSeries) {
    const std::string svg = grid_svg(grid_json(two_cell_report(1, 1)));
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    for (const char* title : {">Prefill<", ">Decode<", ">Throughput, first run of each test<",
                              ">depth 0<", ">pp512 tg32 d0<"}) {
        EXPECT_NE(svg.find(title), std::string::npos) << title;
    }
    EXPECT_EQ(svg.find("nan"), std::string::npos);
    json empty = grid_json(GridReport{});
    EXPECT_THROW(grid_svg(empty), Error);
    EXPECT_THROW(grid_svg(json{{"kind", "agentic"}}), Error);
}

}  // namespace
}  // namespace fourbit::bench
