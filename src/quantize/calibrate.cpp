#include "quantize/calibrate.h"

#include "quantize/calibration_observer.h"
#include "quantize/sequence_forward.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace fourbit {

uint64_t forward_bytes_estimate(const MiniMaxM2Config& c, int64_t n_tokens) {
    // Per token, f32: the residual, normed input and block output, q and attention output,
    // k and v, router logits and routing, the KV cache of every layer, and an expert's gate,
    // up and the observers' copies (at most every token reaches one expert).
    const int64_t per_token = 4 * c.hidden_size + 2 * c.q_width() + 2 * c.kv_width() +
                              c.num_local_experts + 2 * c.num_experts_per_tok +
                              2 * c.num_hidden_layers * c.kv_width() + 5 * c.intermediate_size;
    return static_cast<uint64_t>(4) *
           (static_cast<uint64_t>(per_token) * static_cast<uint64_t>(n_tokens) +
            static_cast<uint64_t>(c.vocab_size));
}

CalibrationOutcome run_calibration(const CalibrationLoop& loop, CalibrationState& state,
                                   CalibrationTimings& timings) {
    const CalibrationQueue& queue = *loop.queue;
    const MiniMaxM2Config& config = loop.model->config();
    int64_t n_to_run = 0, n_tokens_to_run = 0;
    for (size_t i = 0; i < queue.samples.size(); ++i) {
        if (state.done[i]) continue;
        ++n_to_run;
        n_tokens_to_run += static_cast<int64_t>(queue.samples[i].token_ids.size());
    }
    Progress progress("calibrating", static_cast<uint64_t>(n_tokens_to_run), "tokens");
    CalibrationObserver observer(*loop.plan, loop.model->weights(), state);
    int64_t since_checkpoint = 0, n_checkpoints = 0;
    auto checkpoint = [&] {
        const std::string path = loop.store->write(state, loop.plan->modules);
        spdlog::debug("checkpoint {}", path);
        since_checkpoint = 0;
        ++n_checkpoints;
        if (loop.after_checkpoint) loop.after_checkpoint(n_checkpoints);
    };
    auto elapsed_s = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - loop.start)
            .count();
    };
    for (size_t i = 0; i < queue.samples.size(); ++i) {
        if (state.done[i]) continue;
        const CalibrationSample& sample = queue.samples[i];
        const int64_t n_tokens = static_cast<int64_t>(sample.token_ids.size());
        const uint64_t bytes = forward_bytes_estimate(config, n_tokens);
        if (loop.memory_budget_bytes > 0 && bytes > loop.memory_budget_bytes) {
            if (!state.deferred[i]) {
                spdlog::warn("{}: {} tokens need about {:.1f} MB, over the memory budget of "
                             "{:.1f} MB; deferred",
                             sample.where, n_tokens, bytes / 1e6, loop.memory_budget_bytes / 1e6);
                state.deferred[i] = 1;
            }
            progress.advance(static_cast<uint64_t>(n_tokens));
            continue;
        }
        const auto begin = std::chrono::steady_clock::now();
        observe_sequence(*loop.model, sample.token_ids, observer);
        timings.forward_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        ++timings.n_samples_run;
        timings.n_tokens_run += n_tokens;
        state.dataset_tokens[sample.dataset] += n_tokens;
        state.done[i] = 1;
        state.deferred[i] = 0;
        progress.advance(static_cast<uint64_t>(n_tokens));
        if (++since_checkpoint >= loop.checkpoint_every) checkpoint();
        if (loop.soft_budget_s > 0 && elapsed_s() > loop.soft_budget_s && !state.complete()) {
            if (since_checkpoint > 0) checkpoint();
            return CalibrationOutcome::soft_stopped;
        }
    }
    progress.finish();
    if (since_checkpoint > 0 || n_checkpoints == 0) checkpoint();
    return state.complete() ? CalibrationOutcome::complete : CalibrationOutcome::deferred_left;
}

}  // namespace fourbit
