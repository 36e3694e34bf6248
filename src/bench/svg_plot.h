// `--plot FILE.svg`: a grid result drawn as SVG text (no plotting library): prefill and decode
// t/s against prompt length (one line per depth and concurrency, std as error bars), and the
// per-second throughput time series of each test's first run.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace fourbit::bench {

// The SVG document for a grid result (grid_json); an Error when it holds no measured cell.
std::string grid_svg(const nlohmann::json& grid);

}  // namespace fourbit::bench
