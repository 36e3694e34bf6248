#include "quantize/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>

#include "quantize/calibration_state.h"

namespace fourbit {

namespace {

using json = nlohmann::json;

std::string decade_label(int64_t tokens) {
    if (tokens <= 0) return "0";
    int64_t low = 1;
    while (low * 10 <= tokens) low *= 10;
    return fmt::format("{}-{}", low, low * 10 - 1);
}

json metrics_json(const NextTokenMetrics& m) {
    json out = {{"predictions", m.n_predictions}, {"perplexity", m.perplexity()}};
    if (m.has_reference) {
        out["reference_perplexity"] = m.reference_perplexity();
        out["mean_kl"] = m.mean_kl();
        out["top1_agreement"] = m.top1_agreement();
    }
    return out;
}

}  // namespace

std::map<std::string, int64_t> expert_token_histogram(const std::vector<int64_t>& tokens) {
    std::map<std::string, int64_t> histogram;
    for (int64_t t : tokens) ++histogram[decade_label(t)];
    return histogram;
}

json calibration_report_json(const ReportInputs& in) {
    const CalibrationState& state = *in.state;
    const QuantizationPlan& plan = *in.plan;
    json report;
    report["status"] = in.status;
    report["model"] = in.model_dir;
    report["out"] = in.out_dir;
    report["format"] = quantization_format_name(in.recipe->format);
    report["recipe_notes"] = in.recipe->notes;
    report["quantizers"] = {{"linears", plan.n_linears()},
                            {"quantized_linears", plan.n_quantized()},
                            {"inserted", plan.quantizers_inserted()},
                            {"active", plan.quantizers_active()},
                            {"disabled", plan.quantizers_disabled()},
                            {"ignore", plan.ignore}};
    json datasets = json::array();
    for (size_t d = 0; d < in.queue->datasets.size(); ++d) {
        const DatasetCounts& c = in.queue->datasets[d];
        datasets.push_back({{"name", c.name},
                            {"records", c.n_records},
                            {"skipped_bad_records", c.n_skipped},
                            {"skipped", c.skipped},
                            {"queued", c.n_queued},
                            {"kept", c.n_kept},
                            {"dropped_too_short", c.n_too_short},
                            {"truncated", c.n_truncated},
                            {"tokens", c.n_tokens},
                            {"tokens_calibrated", state.dataset_tokens[d]},
                            {"held_out", c.n_held_out}});
    }
    report["datasets"] = datasets;
    json deferred = json::array();
    for (size_t i = 0; i < state.deferred.size(); ++i) {
        if (!state.deferred[i]) continue;
        const CalibrationSample& sample = in.queue->samples[i];
        deferred.push_back({{"sample", i},
                            {"where", sample.where},
                            {"tokens", sample.token_ids.size()}});
    }
    report["samples"] = {{"total", state.done.size()},
                         {"done", state.n_done()},
                         {"deferred", deferred}};
    // Tokens per expert over the layers whose experts are quantized.
    std::vector<int64_t> expert_tokens;
    json per_layer = json::array();
    for (int64_t layer = 0; layer < plan.n_layers; ++layer) {
        std::vector<int64_t> tokens(state.expert_tokens.begin() + layer * state.n_experts,
                                    state.expert_tokens.begin() + (layer + 1) * state.n_experts);
        per_layer.push_back({{"layer", layer},
                             {"min", *std::min_element(tokens.begin(), tokens.end())},
                             {"max", *std::max_element(tokens.begin(), tokens.end())},
                             {"tokens", tokens}});
        expert_tokens.insert(expert_tokens.end(), tokens.begin(), tokens.end());
    }
    report["expert_tokens"] = {{"histogram", expert_token_histogram(expert_tokens)},
                               {"layers", per_layer}};
    if (in.starved) {
        json starved = json::array();
        for (const StarvedExpert& s : in.starved->starved) {
            starved.push_back({{"layer", s.layer}, {"expert", s.expert}, {"tokens", s.n_tokens}});
        }
        report["starved_experts"] = {
            {"min_tokens", in.recipe->starved_min_tokens},
            {"abort_percent", in.recipe->starved_expert_pct_abort},
            {"checked", in.starved->n_experts_checked},
            {"percent", in.starved->percent()},
            {"starved", starved},
            {"policy",
             "w1/w3: the router input amax over all tokens of the layer; w2: max of the "
             "well-fed siblings' w2 amax"}};
    }
    json amax = json::object();
    // Every module the calibration observed (the routers too: starved experts are rescued
    // from their amax), and every quantized one.
    for (size_t i = 0; i < plan.modules.size(); ++i) {
        if (!plan.quantized[i] && !(state.input_amax[i] > 0)) continue;
        json entry = {{"quantized", static_cast<bool>(plan.quantized[i])},
                      {"input_amax_observed", state.input_amax[i]}};
        if (!in.export_input_amax.empty()) entry["input_amax"] = in.export_input_amax[i];
        if (!in.weight_amax.empty()) entry["weight_amax"] = in.weight_amax[i];
        amax[plan.modules[i].prefix] = entry;
    }
    report["amax"] = amax;
    const double seconds = in.timings.forward_seconds;
    report["timings"] = {{"forward_seconds", seconds},
                         {"samples_run", in.timings.n_samples_run},
                         {"tokens_run", in.timings.n_tokens_run},
                         {"tokens_per_second",
                          seconds > 0 ? in.timings.n_tokens_run / seconds : 0.0},
                         {"export_seconds", in.export_seconds}};
    if (!in.smoke_test.empty()) {
        json smoke = json::object();
        NextTokenMetrics all;
        for (const auto& [name, metrics] : in.smoke_test) {
            smoke[name] = metrics_json(metrics);
            all.merge(metrics);
        }
        smoke["all"] = metrics_json(all);
        report["kl_smoke_test"] = smoke;
    }
    return report;
}

std::string calibration_report_summary(const json& r) {
    std::string out = fmt::format("fourbit quantize: {} ({} -> {}, {})\n",
                                  r["status"].get<std::string>(), r["model"].get<std::string>(),
                                  r["out"].get<std::string>(), r["format"].get<std::string>());
    const json& q = r["quantizers"];
    out += fmt::format(
        "quantized Linears: {} of {}; quantizers inserted {}, active {}, disabled {}\n",
        q["quantized_linears"].get<int64_t>(), q["linears"].get<int64_t>(),
        q["inserted"].get<int64_t>(), q["active"].get<int64_t>(), q["disabled"].get<int64_t>());
    out += fmt::format("{:<24} {:>8} {:>7} {:>7} {:>7} {:>10} {:>10}\n", "dataset", "records",
                       "queued", "kept", "short", "tokens", "calibrated");
    for (const json& d : r["datasets"]) {
        out += fmt::format("{:<24} {:>8} {:>7} {:>7} {:>7} {:>10} {:>10}\n",
                           d["name"].get<std::string>(), d["records"].get<int64_t>(),
                           d["queued"].get<int64_t>(), d["kept"].get<int64_t>(),
                           d["dropped_too_short"].get<int64_t>(), d["tokens"].get<int64_t>(),
                           d["tokens_calibrated"].get<int64_t>());
        if (d["skipped_bad_records"].get<int64_t>() > 0) {
            out += fmt::format("  {} bad records skipped\n", d["skipped_bad_records"].get<int64_t>());
        }
    }
    const json& s = r["samples"];
    out += fmt::format("samples: {} of {} done, {} deferred\n", s["done"].get<int64_t>(),
                       s["total"].get<int64_t>(), s["deferred"].size());
    out += "tokens per expert:";
    for (const auto& [bin, count] : r["expert_tokens"]["histogram"].items()) {
        out += fmt::format(" [{}]: {}", bin, count.get<int64_t>());
    }
    out += "\n";
    if (r.contains("starved_experts")) {
        const json& starved = r["starved_experts"];
        out += fmt::format("starved experts: {} of {} ({:.2f}%, abort above {}%)\n",
                           starved["starved"].size(), starved["checked"].get<int64_t>(),
                           starved["percent"].get<double>(),
                           starved["abort_percent"].get<double>());
    }
    const json& t = r["timings"];
    out += fmt::format("calibration: {} tokens in {:.2f} s ({:.1f} tokens/s); export {:.2f} s\n",
                       t["tokens_run"].get<int64_t>(), t["forward_seconds"].get<double>(),
                       t["tokens_per_second"].get<double>(), t["export_seconds"].get<double>());
    if (r.contains("kl_smoke_test")) {
        out += fmt::format("KL smoke test (held-out, NVFP4 W4A4 vs source):\n  {:<22} {:>8} {:>10} "
                           "{:>10} {:>8}\n",
                           "dataset", "tokens", "mean KL", "ppl", "top-1");
        for (const auto& [name, m] : r["kl_smoke_test"].items()) {
            out += fmt::format("  {:<22} {:>8} {:>10.5f} {:>10.3f} {:>7.2f}%\n", name,
                               m["predictions"].get<int64_t>(), m.value("mean_kl", 0.0),
                               m["perplexity"].get<double>(),
                               100.0 * m.value("top1_agreement", 0.0));
        }
    }
    return out;
}

void write_calibration_report(const std::string& dir, const json& report) {
    std::filesystem::create_directories(dir);
    write_file_atomically((std::filesystem::path(dir) / "report.json").string(),
                          report.dump(1) + "\n");
    write_file_atomically((std::filesystem::path(dir) / "report.txt").string(),
                          calibration_report_summary(report));
}

}  // namespace fourbit
