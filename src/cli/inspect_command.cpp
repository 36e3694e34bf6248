// `fourbit inspect DIR [--json]`: the architecture, the quantization format and ignore list,
// which modules are NVFP4 / BF16 / FP8 (overall and per layer), bytes on disk and in memory per
// kind, and every anomaly found. Exit 0 when clean, 1 when anything is wrong.
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/inspect_checkpoint.h"

namespace fourbit {

namespace {

using nlohmann::json;

json architecture_json(const MiniMaxM2Config& c) {
    return {{"model_type", "minimax_m2"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"head_dim", c.head_dim},
            {"rotary_dim", c.rotary_dim},
            {"intermediate_size", c.intermediate_size},
            {"num_local_experts", c.num_local_experts},
            {"num_experts_per_tok", c.num_experts_per_tok},
            {"tie_word_embeddings", c.tie_word_embeddings}};
}

json report_json(const CheckpointReport& report) {
    json kinds = json::object();
    for (const auto& [kind, summary] : report.kinds) {
        kinds[kind] = {{"modules", summary.n_modules},
                       {"bytes_on_disk", summary.bytes_on_disk},
                       {"bytes_in_memory", summary.bytes_in_memory}};
    }
    json layers = json::array();
    for (size_t i = 0; i < report.layers.size(); ++i) {
        const LayerSummary& layer = report.layers[i];
        layers.push_back({{"layer", i},
                          {"attention", layer.attention},
                          {"router", layer.router},
                          {"experts", layer.experts}});
    }
    json anomalies = json::array();
    for (const CheckpointProblem& anomaly : report.anomalies) {
        anomalies.push_back(
            {{"kind", anomaly.kind}, {"subject", anomaly.subject}, {"message", anomaly.message}});
    }
    return {{"dir", report.dir},
            {"architecture", architecture_json(report.config)},
            {"format", quantization_format_name(report.scheme.format)},
            {"quantization_source", report.scheme.source},
            {"ignore", report.scheme.ignore_texts()},
            {"input_scales", report.scheme.input_scales},
            {"modules", kinds},
            {"layers", layers},
            {"lm_head", report.lm_head},
            {"other_bytes", report.other_bytes},
            {"tensors", report.n_tensors},
            {"bytes_on_disk", report.bytes_on_disk},
            {"unused_tensors", report.n_unused},
            {"unused_bytes", report.unused_bytes},
            {"clean", report.clean()},
            {"anomalies", anomalies}};
}

std::string counts_text(const std::map<std::string, size_t>& counts) {
    std::string text;
    for (const auto& [kind, n] : counts) {
        if (!text.empty()) text += ", ";
        text += fmt::format("{} {}", n, kind);
    }
    return text.empty() ? "-" : text;
}

std::string megabytes(uint64_t bytes) { return fmt::format("{:.1f} MB", bytes / 1e6); }

void print_text(const CheckpointReport& report) {
    const MiniMaxM2Config& c = report.config;
    std::string out;
    out += fmt::format("checkpoint   {}\n", report.dir);
    out += fmt::format(
        "architecture minimax_m2: {} layers, hidden {}, {}/{} heads of {} (rotary {}), {} experts "
        "top-{} of width {}, vocabulary {}\n",
        c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
        c.head_dim, c.rotary_dim, c.num_local_experts, c.num_experts_per_tok, c.intermediate_size,
        c.vocab_size);
    out += fmt::format("format       {}{} ({})\n", quantization_format_name(report.scheme.format),
                       is_nvfp4(report.scheme.format)
                           ? (report.scheme.input_scales ? ", W4A4 (input scales)" : ", W4A16")
                           : "",
                       report.scheme.source);
    std::string ignore;
    for (const std::string& pattern : report.scheme.ignore_texts()) {
        ignore += (ignore.empty() ? "" : ", ") + pattern;
    }
    out += fmt::format("ignore       {}\n", ignore.empty() ? "-" : ignore);
    out += "linear modules:\n";
    for (const auto& [kind, summary] : report.kinds) {
        out += fmt::format("  {:<8} {:>7} modules  {:>12} on disk  {:>12} in memory\n", kind,
                           summary.n_modules, megabytes(summary.bytes_on_disk),
                           megabytes(summary.bytes_in_memory));
    }
    out += fmt::format("  other    embeddings, norms, biases: {}\n", megabytes(report.other_bytes));
    out +=
        fmt::format("  unused   {} tensors, {}\n", report.n_unused, megabytes(report.unused_bytes));
    out += fmt::format("  total    {} tensors, {} on disk\n", report.n_tensors,
                       megabytes(report.bytes_on_disk));
    out += "layers (attention | router | experts):\n";
    for (size_t i = 0; i < report.layers.size(); ++i) {
        const LayerSummary& layer = report.layers[i];
        out += fmt::format("  {:>3}  {} | {} | {}\n", i, counts_text(layer.attention),
                           counts_text(layer.router), counts_text(layer.experts));
    }
    out += fmt::format("  lm_head  {}\n", counts_text(report.lm_head));
    if (report.clean()) {
        out += "anomalies: none\n";
    } else {
        out += fmt::format("anomalies: {}\n", report.anomalies.size());
        for (const CheckpointProblem& anomaly : report.anomalies) {
            out += fmt::format("  [{}] {}: {}\n", anomaly.kind, anomaly.subject, anomaly.message);
        }
    }
    std::fputs(out.c_str(), stdout);
}

}  // namespace

void add_inspect_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        bool json = false;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand(
        "inspect", "what a checkpoint holds, its quantization, and every anomaly (exit 1 if any)");
    command->add_option("dir", options->model_dir, "checkpoint directory")->required();
    command->add_flag("--json", options->json, "print one JSON object");
    command->callback([options] {
        CheckpointReport report = inspect_checkpoint(options->model_dir);
        if (options->json) {
            std::printf("%s\n", report_json(report).dump(2).c_str());
        } else {
            print_text(report);
        }
        std::fflush(stdout);
        // Anomalies are the result, not an error: the report is printed, the exit code says it.
        if (!report.clean()) throw CLI::RuntimeError(1);
    });
}

}  // namespace fourbit
