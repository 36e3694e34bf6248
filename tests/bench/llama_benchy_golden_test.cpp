// fourbit's formulas against llama-benchy 0.4.0's own code on the same recorded streams
// (golden/llama_benchy_streams.json, made by make_llama_benchy_golden.py): every figure of every
// cell equal, so the two tools can only differ in what they measure, never in how they compute.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/grid_report.h"
#include "bench/grid_runner.h"

namespace fourbit::bench {
namespace {

using nlohmann::json;

json golden() {
    std::ifstream in(std::string(FOURBIT_SOURCE_DIR) +
                     "/tests/bench/golden/llama_benchy_streams.json");
    return json::parse(in);
}

RecordedStream stream_of(const json& recorded) {
    RecordedStream s;
    s.start_s = recorded["start"];
    s.first_response_s = recorded["first_response"].get<double>();
    s.first_token_s = recorded["chunks"][0][0].get<double>();
    s.end_s = recorded["end"];
    s.usage_prompt_tokens = recorded["usage_prompt_tokens"];
    for (const json& chunk : recorded["chunks"]) s.chunks.push_back({chunk[0], chunk[1]});
    return s;
}

TEST(LlamaBenchyGolden, SameFiguresOnTheSameStreams) {
    const json data = golden();
    ASSERT_GE(data["cases"].size(), 6u);
    for (const json& c : data["cases"]) {
        SCOPED_TRACE(c["name"].get<std::string>());
        std::vector<std::vector<RecordedStream>> runs;
        for (const json& batch : c["runs"]) {
            runs.emplace_back();
            for (const json& recorded : batch) runs.back().push_back(stream_of(recorded));
        }
        GridReport report;
        report.cells.push_back(summarize_cell({c["concurrency"].get<int64_t>(), 0, 0, 0, false},
                                              runs, c["latency_s"], c["expected_prompt_tokens"]));
        const json ours = grid_json(report)["benchmarks"][0];
        for (const auto& [metric, theirs] : c["llama_benchy"].items()) {
            SCOPED_TRACE(metric);
            ASSERT_EQ(ours[metric].is_null(), theirs.is_null());
            if (theirs.is_null()) continue;
            for (const char* key : {"mean", "std"}) {
                const double expected = theirs[key];
                EXPECT_NEAR(ours[metric][key].get<double>(), expected,
                            1e-9 * std::max(1.0, std::abs(expected)))
                    << key;
            }
        }
    }
}

}  // namespace
}  // namespace fourbit::bench
