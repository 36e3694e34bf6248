#include "quantize/evaluate.h"

#include <chrono>
#include <filesystem>

#include "model/minimax_m2.h"
#include "quantize/calibration_data.h"
#include "quantize/calibration_samples.h"
#include "quantize/sequence_forward.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/progress.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;

nlohmann::json metrics_json(const NextTokenMetrics& m) {
    nlohmann::json out = {{"predictions", m.n_predictions}, {"perplexity", m.perplexity()}};
    if (m.has_reference) {
        out["reference_perplexity"] = m.reference_perplexity();
        out["perplexity_delta"] = m.perplexity() - m.reference_perplexity();
        out["mean_kl"] = m.mean_kl();
        out["top1_agreement"] = m.top1_agreement();
    }
    return out;
}

}  // namespace

EvalResult evaluate_models(const EvalRequest& request) {
    LoadOptions load;
    load.emulate_w4a4 = request.emulate_w4a4;
    const MiniMaxM2 model(load_model_weights(request.model_dir, load));
    std::optional<MiniMaxM2> reference;
    if (!request.reference_dir.empty()) {
        reference.emplace(load_model_weights(request.reference_dir));
        if (reference->config().vocab_size != model.config().vocab_size) {
            fail("--reference {} has a vocabulary of {}, --model {} of {}: KL needs the same one",
                 request.reference_dir, reference->config().vocab_size, request.model_dir,
                 model.config().vocab_size);
        }
    }
    const std::optional<Tokenizer> tokenizer = load_model_tokenizer(request.model_dir);
    const ChatTemplate chat_template = ChatTemplate::load_from_model_dir(request.model_dir);

    struct Item {
        std::string dataset;
        std::vector<int32_t> ids;
    };
    std::vector<Item> items;
    for (const std::string& path : request.data_files) {
        const DatasetFile file = read_dataset_file(path, request.skip_bad_records);
        const std::string name = fs::path(path).stem().string();
        for (size_t i = 0; i < file.records.size() && static_cast<int64_t>(i) < request.max_samples;
             ++i) {
            std::vector<int32_t> ids = tokenize_record(file.records[i], chat_template, tokenizer ? &*tokenizer : nullptr);
            if (static_cast<int64_t>(ids.size()) > request.max_tokens) ids.resize(request.max_tokens);
            for (int32_t id : ids) {
                if (id < 0 || id >= model.config().vocab_size) {
                    fail("{}: token id {} is outside the vocabulary", file.records[i].where, id);
                }
            }
            if (ids.size() >= 2) items.push_back({name, std::move(ids)});
        }
    }
    if (items.empty()) fail("no sample of two tokens or more in the --data files");

    EvalResult result;
    Progress progress("evaluating", items.size(), "samples");
    for (const Item& item : items) {
        const auto begin = std::chrono::steady_clock::now();
        const Tensor logits = sequence_logits(model, item.ids);
        result.model_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        result.n_tokens += static_cast<int64_t>(item.ids.size());
        NextTokenMetrics& metrics = result.datasets[item.dataset];
        if (reference) {
            const Tensor reference_logits = sequence_logits(*reference, item.ids);
            add_next_token_metrics(logits, &reference_logits, item.ids, metrics);
        } else {
            add_next_token_metrics(logits, nullptr, item.ids, metrics);
        }
        progress.advance(1);
    }
    progress.finish();
    for (const auto& [name, metrics] : result.datasets) result.all.merge(metrics);
    return result;
}

nlohmann::json eval_result_json(const EvalRequest& request, const EvalResult& result) {
    nlohmann::json datasets = nlohmann::json::object();
    for (const auto& [name, metrics] : result.datasets) datasets[name] = metrics_json(metrics);
    return {{"model", request.model_dir},
            {"reference", request.reference_dir.empty() ? nlohmann::json(nullptr)
                                                        : nlohmann::json(request.reference_dir)},
            {"w4a4_emulated", request.emulate_w4a4},
            {"datasets", datasets},
            {"all", metrics_json(result.all)},
            {"tokens", result.n_tokens},
            {"model_seconds", result.model_seconds},
            {"model_tokens_per_second",
             result.model_seconds > 0 ? result.n_tokens / result.model_seconds : 0.0}};
}

std::string eval_result_table(const EvalResult& result) {
    const bool reference = result.all.has_reference;
    std::string out = fmt::format("{:<24} {:>9} {:>11}", "dataset", "tokens", "perplexity");
    if (reference) out += fmt::format(" {:>11} {:>10} {:>8}", "ref ppl", "mean KL", "top-1");
    out += "\n";
    auto row = [&](const std::string& name, const NextTokenMetrics& m) {
        out += fmt::format("{:<24} {:>9} {:>11.4f}", name, m.n_predictions, m.perplexity());
        if (reference) {
            out += fmt::format(" {:>11.4f} {:>10.6f} {:>7.2f}%", m.reference_perplexity(),
                               m.mean_kl(), 100.0 * m.top1_agreement());
        }
        out += "\n";
    };
    for (const auto& [name, metrics] : result.datasets) row(name, metrics);
    row("all", result.all);
    return out;
}

}  // namespace fourbit
