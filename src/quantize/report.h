// The calibration report: tokens per dataset, kept / dropped / deferred samples, quantizer
// counts, amax per module, tokens per expert (a histogram and each layer's range), starved
// experts and the rescue policy, timings, and the export's KL smoke test. Written as
// OUT/calibration/report.json and a readable OUT/calibration/report.txt.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "quantize/calibrate.h"
#include "quantize/calibration_samples.h"
#include "quantize/eval_metrics.h"
#include "quantize/starved_experts.h"

namespace fourbit {

struct ReportInputs {
    std::string model_dir, out_dir, status;  // status: complete, soft_stopped, ...
    const Recipe* recipe = nullptr;
    const QuantizationPlan* plan = nullptr;
    const CalibrationQueue* queue = nullptr;
    const CalibrationState* state = nullptr;
    CalibrationTimings timings;
    std::optional<StarvedExperts> starved;
    std::vector<float> export_input_amax;  // after rescue; empty before export
    std::vector<float> weight_amax;        // empty before export
    double export_seconds = 0;
    std::map<std::string, NextTokenMetrics> smoke_test;  // per dataset
};

nlohmann::json calibration_report_json(const ReportInputs& inputs);
std::string calibration_report_summary(const nlohmann::json& report);
// Writes report.json and report.txt into DIR (atomically).
void write_calibration_report(const std::string& dir, const nlohmann::json& report);

// Counts of experts by tokens received: "0", "1-9", "10-99", ... (decades).
std::map<std::string, int64_t> expert_token_histogram(const std::vector<int64_t>& tokens);

}  // namespace fourbit
