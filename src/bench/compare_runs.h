// `fourbit bench --compare A.json B.json`: the release's comparison tables for two saved runs of
// the same kind (two profiles, two servers). Agentic: per-task wall-clock speed-up (A / B),
// tokens and decode rates, whole-set totals. Grid: per test, t/s of each and B / A.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace fourbit::bench {

// "grid", "agentic", or "" for anything else; llama-benchy's JSON (no "kind", a "benchmarks"
// array of the same fields) is a grid, so fourbit's and llama-benchy's runs compare directly.
std::string result_kind(const nlohmann::json& result);

// An Error naming the files when their kinds differ or are not "grid"/"agentic".
std::string compare_markdown(const nlohmann::json& a, const std::string& a_name,
                             const nlohmann::json& b, const std::string& b_name);

}  // namespace fourbit::bench
