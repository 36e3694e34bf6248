// `fourbit eval`: perplexity of a model on data files, and against a reference model (e.g. the
// BF16 source of an NVFP4 checkpoint) the mean KL divergence and top-1 agreement of their
// next-token distributions, per dataset and overall.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quantize/eval_metrics.h"

namespace fourbit {

struct EvalRequest {
    std::string model_dir;
    std::string reference_dir;  // "" = none
    std::vector<std::string> data_files;
    int64_t max_samples = 64;    // per file, the first ones
    int64_t max_tokens = 2048;   // per sample, truncated
    bool emulate_w4a4 = true;    // NVFP4 modules with input scales quantize their activations
    bool skip_bad_records = false;
};

struct EvalResult {
    std::map<std::string, NextTokenMetrics> datasets;  // by file stem
    NextTokenMetrics all;
    int64_t n_tokens = 0;         // run through the model (per model)
    double model_seconds = 0;     // in the evaluated model's forward passes
};

// Samples are rendered and tokenized with the model's tokenizer and chat template (the
// reference must share its vocabulary: Error otherwise).
EvalResult evaluate_models(const EvalRequest& request);

nlohmann::json eval_result_json(const EvalRequest& request, const EvalResult& result);
std::string eval_result_table(const EvalResult& result);

}  // namespace fourbit
