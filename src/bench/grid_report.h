// The grid's results in llama-benchy's output formats: JSON (its field names, plus fourbit's
// extras: prompt sizing, usage, request counts), a Markdown table ("mean ± std") and CSV. The
// Markdown and CSV are rendered from the JSON, so a saved run can be printed again.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "bench/grid_runner.h"

namespace fourbit::bench {

nlohmann::ordered_json grid_json(const GridReport& report);

// One row per test: "pp512", "tg128 @ d4096", "ctx_pp @ d4096 (c4)", as llama-benchy names them.
std::string grid_markdown(const nlohmann::json& grid);
std::string grid_csv(const nlohmann::json& grid);

// "mean ± std" with two decimals, or "" for a missing metric.
std::string mean_std_text(const nlohmann::json& metric);

}  // namespace fourbit::bench
