#include "quantize/quantize_run.h"

#include <cmath>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "formats/model_config.h"
#include "model/minimax_m2.h"
#include "model/weights.h"
#include "quantize/calibrate.h"
#include "quantize/calibration_samples.h"
#include "quantize/export_nvfp4.h"
#include "quantize/quantized_modules.h"
#include "quantize/report.h"
#include "quantize/sequence_forward.h"
#include "quantize/starved_experts.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The hard wall-clock stop: a thread that ends the process at the deadline, whatever it is
// doing. Checkpoints are atomic, so the newest one stays valid.
class HardStop {
public:
    explicit HardStop(double seconds) {
        if (seconds <= 0) return;
        thread_ = std::thread([this, seconds] {
            std::unique_lock lock(mutex_);
            if (wake_.wait_for(lock, std::chrono::duration<double>(seconds),
                               [this] { return stopped_; })) {
                return;
            }
            std::fprintf(stderr,
                         "fourbit: error: wall-clock hard limit of %.0f s reached; stopped. The "
                         "newest checkpoint is intact: run again with --resume\n",
                         seconds);
            std::fflush(stderr);
            std::_Exit(kHardStopExitCode);
        });
    }
    ~HardStop() {
        if (!thread_.joinable()) return;
        {
            std::lock_guard lock(mutex_);
            stopped_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopped_ = false;
    std::thread thread_;
};

double hard_limit_s(const Recipe& recipe) {
    if (recipe.wallclock_hard_s > 0) return recipe.wallclock_hard_s;
    if (recipe.wallclock_budget_s > 0) return recipe.wallclock_budget_s * 1.1 + 60;
    return 0;
}

// KL of the exported model (W4A4 emulated) against the source on the held-out samples.
std::map<std::string, NextTokenMetrics> kl_smoke_test(const QuantizeOptions& options,
                                                      const CalibrationQueue& queue) {
    std::map<std::string, NextTokenMetrics> metrics;
    if (queue.held_out.empty()) return metrics;
    const MiniMaxM2 source(load_model_weights(options.model_dir));
    LoadOptions load;
    load.emulate_w4a4 = true;
    const MiniMaxM2 quantized(load_model_weights(options.out_dir, load));
    Progress progress("KL smoke test", queue.held_out.size(), "samples");
    for (const CalibrationSample& sample : queue.held_out) {
        const Tensor reference = sequence_logits(source, sample.token_ids);
        const Tensor logits = sequence_logits(quantized, sample.token_ids);
        NextTokenMetrics& m = metrics[queue.datasets[sample.dataset].name];
        add_next_token_metrics(logits, &reference, sample.token_ids, m);
        progress.advance(1);
    }
    progress.finish();
    for (const auto& [name, m] : metrics) {
        if (!std::isfinite(m.mean_kl())) {
            fail("KL smoke test: the exported model's KL on {} is {}; the export is broken", name,
                 m.mean_kl());
        }
    }
    return metrics;
}

// OUT/calibration/queue.jsonl: the token ids calibrated, one sample a line, so that a
// reference (tools/reference/check_quantize.py) can run the very same tokens.
void write_queue_file(const std::string& dir, const CalibrationQueue& queue) {
    std::string text;
    for (const CalibrationSample& sample : queue.samples) {
        text += nlohmann::json{{"dataset", queue.datasets[sample.dataset].name},
                               {"where", sample.where},
                               {"input_ids", sample.token_ids}}
                    .dump() +
                "\n";
    }
    fs::create_directories(dir);
    write_file_atomically((fs::path(dir) / "queue.jsonl").string(), text);
}

}  // namespace

int run_quantize(const QuantizeOptions& options) {
    const Clock::time_point start = Clock::now();
    const Recipe& recipe = options.recipe;
    validate_recipe(recipe);
    const MiniMaxM2Config config = load_minimax_m2_config(options.model_dir);
    const std::vector<std::string> ignore =
        recipe.ignore.empty() ? default_ignore_list(config, recipe.format) : recipe.ignore;
    const QuantizationPlan plan = make_quantization_plan(config, ignore);
    spdlog::info("{} of {} Linears quantized: {} quantizers inserted, {} active, {} disabled",
                 plan.n_quantized(), plan.n_linears(), plan.quantizers_inserted(),
                 plan.quantizers_active(), plan.quantizers_disabled());

    const std::optional<Tokenizer> tokenizer = load_model_tokenizer(options.model_dir);
    const ChatTemplate chat_template = ChatTemplate::load_from_model_dir(options.model_dir);
    const CalibrationQueue queue =
        build_calibration_queue(recipe, chat_template, tokenizer ? &*tokenizer : nullptr,
                                config.vocab_size);
    for (const DatasetCounts& counts : queue.datasets) {
        spdlog::info("{}: {} queued, {} kept, {} too short, {} tokens", counts.name,
                     counts.n_queued, counts.n_kept, counts.n_too_short, counts.n_tokens);
    }

    CheckpointStore store((fs::path(options.out_dir) / "calibration").string());
    std::string checkpoint_path;
    std::optional<CalibrationState> loaded = store.load_latest(plan.modules, &checkpoint_path);
    CalibrationState state;
    if (options.resume || options.export_only) {
        if (!loaded) {
            fail("{} holds no valid calibration checkpoint to {}", store.dir(),
                 options.export_only ? "export from" : "resume");
        }
        if (loaded->queue_sha256 != queue.sha256 || loaded->done.size() != queue.samples.size()) {
            fail("{} was made from other calibration samples (the datasets, recipe or tokenizer "
                 "changed); resume needs the same ones",
                 checkpoint_path);
        }
        state = std::move(*loaded);
        spdlog::info("resuming from {}: {} of {} samples done", checkpoint_path, state.n_done(),
                     state.done.size());
    } else {
        if (loaded) {
            fail("{} already holds a calibration checkpoint ({}); pass --resume to continue it, "
                 "--export-only to export it, or choose another --out",
                 options.out_dir, checkpoint_path);
        }
        write_queue_file(store.dir(), queue);
        state = CalibrationState::empty(queue.sha256, static_cast<int64_t>(queue.samples.size()),
                                        plan.n_linears(), config.num_hidden_layers,
                                        config.num_local_experts,
                                        static_cast<int64_t>(queue.datasets.size()));
    }

    ReportInputs report;
    report.model_dir = options.model_dir;
    report.out_dir = options.out_dir;
    report.recipe = &recipe;
    report.plan = &plan;
    report.queue = &queue;
    report.state = &state;
    const std::string report_dir = store.dir();

    if (!options.export_only && !state.complete()) {
        HardStop hard_stop(hard_limit_s(recipe));
        const MiniMaxM2 model(load_model_weights(options.model_dir));
        CalibrationLoop loop;
        loop.model = &model;
        loop.plan = &plan;
        loop.queue = &queue;
        loop.store = &store;
        loop.memory_budget_bytes = static_cast<uint64_t>(recipe.memory_budget_gb * 1e9);
        loop.checkpoint_every = recipe.checkpoint_every;
        loop.soft_budget_s = recipe.wallclock_budget_s;
        loop.start = start;
        if (options.kill_after_checkpoints > 0) {
            loop.after_checkpoint = [n = options.kill_after_checkpoints](int64_t written) {
                if (written == n) std::raise(SIGKILL);
            };
        }
        const CalibrationOutcome outcome = run_calibration(loop, state, report.timings);
        if (outcome != CalibrationOutcome::complete) {
            report.status = outcome == CalibrationOutcome::soft_stopped ? "soft_stopped"
                                                                        : "deferred_left";
            write_calibration_report(report_dir, calibration_report_json(report));
            if (outcome == CalibrationOutcome::soft_stopped) {
                std::printf("stopped at the wall-clock budget of %.0f s after %lld of %zu samples; "
                            "the state is checkpointed in %s. Run again with --resume to "
                            "continue.\n",
                            recipe.wallclock_budget_s, static_cast<long long>(state.n_done()),
                            state.done.size(), store.dir().c_str());
            } else {
                uint64_t largest = 0;
                for (size_t i = 0; i < state.deferred.size(); ++i) {
                    if (state.deferred[i]) {
                        largest = std::max(largest, forward_bytes_estimate(
                                                        config, queue.samples[i].token_ids.size()));
                    }
                }
                std::printf("%lld samples exceed the memory budget of %.3f GB and were deferred; "
                            "the rest is checkpointed in %s. Run again with --resume and a "
                            "memory budget of at least %.3f GB to finish.\n",
                            static_cast<long long>(state.n_deferred()), recipe.memory_budget_gb,
                            store.dir().c_str(), largest / 1e9);
            }
            return 0;
        }
    } else if (!state.complete()) {
        fail("{} has {} of {} samples calibrated; --export-only needs a finished calibration "
             "(use --resume)",
             checkpoint_path, state.n_done(), state.done.size());
    }

    report.starved = find_starved_experts(plan, state, recipe.starved_min_tokens);
    if (!report.starved->starved.empty()) {
        spdlog::warn("{} of {} experts are starved (fewer than {} tokens); rescued by policy",
                     report.starved->starved.size(), report.starved->n_experts_checked,
                     recipe.starved_min_tokens);
    }
    try {
        report.export_input_amax = rescue_starved_experts(plan, state, *report.starved,
                                                          recipe.starved_expert_pct_abort);
    } catch (const Error&) {
        report.status = "aborted_starved_experts";
        write_calibration_report(report_dir, calibration_report_json(report));
        throw;
    }
    const Clock::time_point export_start = Clock::now();
    ExportRequest request;
    request.source_dir = options.model_dir;
    request.out_dir = options.out_dir;
    request.format = recipe.format;
    request.plan = &plan;
    request.input_amax = report.export_input_amax;
    const ExportSummary summary = export_nvfp4(request);
    report.weight_amax = summary.weight_amax;
    report.export_seconds = std::chrono::duration<double>(Clock::now() - export_start).count();
    report.smoke_test = kl_smoke_test(options, queue);
    report.status = "complete";
    const nlohmann::json json = calibration_report_json(report);
    write_calibration_report(report_dir, json);
    std::printf("%s", calibration_report_summary(json).c_str());
    std::printf("wrote %lld NVFP4 modules (%lld tensors, %.1f MB) to %s; report in %s\n",
                static_cast<long long>(summary.n_quantized),
                static_cast<long long>(summary.n_tensors), summary.bytes_written / 1e6,
                options.out_dir.c_str(), report_dir.c_str());
    return 0;
}

}  // namespace fourbit
