#include "runtime/engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <span>
#include <utility>

#include "ops/top_k.h"
#include "runtime/device_memory_plan.h"
#include "runtime/step_logits.h"
#include "tensor/cuda_memory.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// log-softmax of one row of logits, in double for the normaliser.
std::vector<float> log_softmax(std::span<const float> logits) {
    const float top = *std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (float x : logits) total += std::exp(static_cast<double>(x - top));
    const float log_total = static_cast<float>(std::log(total)) + top;
    std::vector<float> out(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - log_total;
    return out;
}

int64_t physical_memory_bytes() {
    return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
}

// The pool's size in blocks, from the options (see EngineOptions), checked to hold one whole
// context: with that, preemption can always make room and every request eventually runs.
int64_t resolve_num_blocks(const EngineOptions& options, const MiniMaxM2Config& config,
                           Device device) {
    const int64_t block_bytes =
        KvPool::bytes_per_block(config, options.kv_block_size, options.kv_cache_dtype);
    const int64_t context_blocks =
        (options.max_model_len + options.kv_block_size - 1) / options.kv_block_size;
    int64_t blocks = options.num_kv_blocks;
    if (blocks <= 0 && options.kv_cache_memory_bytes > 0) {
        blocks = options.kv_cache_memory_bytes / block_bytes;
    }
    if (blocks <= 0) {
        int64_t memory = physical_memory_bytes() / 4;
        if (device.is_cuda()) {
            const DeviceMemoryInfo info = cuda_memory_info(device.index);
            const int64_t max_rows =
                options.max_num_seqs *
                (1 + std::max<int64_t>(options.speculative.num_speculative_tokens, 0));
            DeviceMemoryPlan plan = plan_device_memory(
                info.total_bytes, options.gpu_memory_utilization, 0,
                forward_workspace_bytes(config, options.max_num_batched_tokens, max_rows),
                device_text(device));
            memory = kv_cache_bytes_left(plan, info.total_bytes, info.free_bytes);
            spdlog::info("{} memory: {}", device_text(device), plan.summary());
        }
        blocks = std::min(options.max_num_seqs * context_blocks,
                          std::max<int64_t>(1, memory / block_bytes));
    }
    if (blocks < context_blocks) {
        fail(
            "the KV cache holds {} blocks of {} tokens ({} MiB), fewer than one context of "
            "max_model_len {} tokens needs ({} blocks, {} MiB): lower --max-model-len or give the "
            "cache more memory",
            blocks, options.kv_block_size, blocks * block_bytes >> 20, options.max_model_len,
            context_blocks, context_blocks * block_bytes >> 20);
    }
    return blocks;
}

}  // namespace

struct Engine::Sequence {
    uint64_t id = 0;
    GenerationRequest request;
    TokenCallback on_token;
    FinishCallback on_finish;
    std::unique_ptr<Sampler> sampler;
    DraftLengthPolicy draft_length;
    int64_t n_output = 0;
    Clock::time_point submitted, last_token;
    double time_to_first_token_s = 0;
};

Engine::Engine(const MiniMaxM2& model, const EngineOptions& options)
    : model_(model), options_(options) {
    if (options_.max_model_len <= 0)
        options_.max_model_len = model.config().max_position_embeddings;
    if (options_.max_num_seqs <= 0) fail("max_num_seqs must be positive");
    if (options_.max_num_batched_tokens <= 0) fail("max_num_batched_tokens must be positive");
    if (options_.kv_block_size <= 0) fail("the KV block size must be positive");
    const Device device = model.weights().device();
    options_.num_kv_blocks = resolve_num_blocks(options_, model.config(), device);
    pool_ = std::make_unique<KvPool>(model.config(), options_.num_kv_blocks, options_.kv_block_size,
                                     device, options_.kv_cache_dtype);
    SchedulerOptions scheduling;
    scheduling.max_num_seqs = options_.max_num_seqs;
    scheduling.max_num_batched_tokens = options_.max_num_batched_tokens;
    scheduling.num_blocks = options_.num_kv_blocks;
    scheduling.block_size = options_.kv_block_size;
    scheduling.enable_prefix_caching = options_.enable_prefix_caching;
    scheduler_ = std::make_unique<Scheduler>(scheduling);
    stats_.kv_blocks_total = options_.num_kv_blocks;
    stats_.spec_accepted_per_position.assign(options_.speculative.num_speculative_tokens, 0);
    thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

uint64_t Engine::submit(GenerationRequest request, TokenCallback on_token,
                        FinishCallback on_finish) {
    const int64_t prompt = static_cast<int64_t>(request.prompt_ids.size());
    if (prompt == 0) fail("the prompt has no tokens");
    if (request.max_tokens < 1) fail("max_tokens must be at least 1, got {}", request.max_tokens);
    if (prompt + request.max_tokens > options_.max_model_len) {
        fail(
            "the prompt ({} tokens) plus max_tokens ({}) exceeds the maximum context length "
            "of {} tokens",
            prompt, request.max_tokens, options_.max_model_len);
    }
    for (int32_t id : request.prompt_ids) {
        if (id < 0 || id >= model_.config().vocab_size) {
            fail("token id {} is outside the vocabulary [0, {})", id, model_.config().vocab_size);
        }
    }
    if (request.top_logprobs < 0) fail("top_logprobs must be >= 0");
    request.sampling.validate();

    auto sequence = std::make_unique<Sequence>();
    sequence->request = std::move(request);
    sequence->on_token = std::move(on_token);
    sequence->on_finish = std::move(on_finish);
    sequence->sampler = std::make_unique<Sampler>(sequence->request.sampling);
    sequence->submitted = Clock::now();
    uint64_t id;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) fail("the engine is shutting down");
        id = next_id_++;
        sequence->id = id;
        submitted_.push_back(std::move(sequence));
        ++stats_.requests_waiting;
    }
    wake_.notify_all();
    return id;
}

void Engine::cancel(uint64_t request_id) {
    {
        std::lock_guard lock(mutex_);
        cancelled_.push_back(request_id);
    }
    wake_.notify_all();
}

EngineStats Engine::take_stats() {
    std::lock_guard lock(mutex_);
    EngineStats snapshot = stats_;
    stats_.time_to_first_token_s.clear();
    stats_.inter_token_s.clear();
    return snapshot;
}

void Engine::finish(Sequence& sequence, const std::string& reason, const std::string& error) {
    scheduler_->remove(sequence.id);
    FinishEvent event;
    event.reason = reason;
    event.error = error;
    event.prompt_tokens = static_cast<int64_t>(sequence.request.prompt_ids.size());
    event.completion_tokens = sequence.n_output;
    event.time_to_first_token_s = sequence.time_to_first_token_s;
    {
        std::lock_guard lock(mutex_);
        ++stats_.requests_finished_total;
        if (sequence.n_output > 0) {
            stats_.time_to_first_token_s.push_back(sequence.time_to_first_token_s);
        }
    }
    // The sequence's slot and blocks are free before its client hears it finished, so a client
    // that reads the stats after its reply no longer counts it running (the loop publishes them
    // only after the step: a test that read them at once saw 1 running and 3 blocks in 2 of 40
    // repeats on a loaded 2-core machine, none with this).
    publish_scheduler_stats();
    if (sequence.on_finish) sequence.on_finish(event);
    sequences_.erase(sequence.id);  // last: `sequence` dies here
}

void Engine::run() {
    for (;;) {
        std::vector<std::unique_ptr<Sequence>> arrived;
        std::vector<uint64_t> cancelled;
        bool stopping;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] {
                return stopping_ || !submitted_.empty() || !cancelled_.empty() ||
                       !sequences_.empty();
            });
            stopping = stopping_;
            for (auto& sequence : submitted_) arrived.push_back(std::move(sequence));
            submitted_.clear();
            cancelled.swap(cancelled_);
        }
        for (auto& sequence : arrived) {
            const uint64_t id = sequence->id;
            scheduler_->add(id, sequence->request.prompt_ids);
            sequences_.emplace(id, std::move(sequence));
        }
        // Between steps every block holds finished KV, so cancelled sequences free theirs now.
        if (stopping) {
            cancelled.clear();
            for (const auto& [id, sequence] : sequences_) cancelled.push_back(id);
        }
        for (uint64_t id : cancelled) {
            auto it = sequences_.find(id);
            if (it != sequences_.end()) finish(*it->second, "cancelled");
        }
        if (stopping) return;
        if (!sequences_.empty()) step();
        publish_scheduler_stats();
    }
}

void Engine::publish_scheduler_stats() {
    const KvCacheStats kv = scheduler_->kv_stats();
    std::lock_guard lock(mutex_);
    stats_.requests_running = scheduler_->num_running();
    stats_.requests_waiting = scheduler_->num_waiting() + static_cast<int64_t>(submitted_.size());
    stats_.kv_blocks_in_use = kv.num_blocks_in_use;
    stats_.prefix_cache_queries = kv.prefix_cache_query_tokens;
    stats_.prefix_cache_hits = kv.prefix_cache_hit_tokens;
    stats_.num_preemptions = scheduler_->num_preemptions();
}

TokenEvent Engine::token_event(const Sequence& sequence, std::span<const float> row,
                               int32_t token_id) const {
    TokenEvent event;
    event.token_id = token_id;
    if (sequence.request.logprobs || sequence.request.top_logprobs > 0) {
        const int64_t vocab = static_cast<int64_t>(row.size());
        std::vector<float> log_probabilities = log_softmax(row);
        event.logprob = log_probabilities[token_id];
        std::vector<int32_t> order(vocab);
        for (int32_t id = 0; id < vocab; ++id) order[id] = id;
        const int64_t k = std::min<int64_t>(sequence.request.top_logprobs, vocab);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
            return log_probabilities[a] > log_probabilities[b] ||
                   (log_probabilities[a] == log_probabilities[b] && a < b);
        });
        for (int64_t j = 0; j < k; ++j) {
            event.top_logprobs.emplace_back(order[j], log_probabilities[order[j]]);
        }
    }
    return event;
}

void Engine::propose_drafts(Sequence& sequence) {
    const SpeculativeConfig& config = options_.speculative;
    if (!config.enabled()) return;
    // No drafts past what the request may still produce: max_tokens or the context.
    const int64_t n_tokens = scheduler_->n_tokens(sequence.id);
    const int64_t room = std::min(sequence.request.max_tokens - sequence.n_output,
                                  options_.max_model_len - n_tokens) -
                         1;
    const int64_t k =
        std::min(room, sequence.draft_length.choose(config, scheduler_->num_running()));
    if (k <= 0) return;
    std::vector<int32_t> drafts = propose_ngram_draft(
        scheduler_->tokens(sequence.id), config.prompt_lookup_min, config.prompt_lookup_max, k);
    if (!drafts.empty()) scheduler_->set_drafts(sequence.id, std::move(drafts));
}

void Engine::step() {
    const StepPlan plan = scheduler_->schedule();
    if (plan.empty()) return;
    // Admissions and preemptions are visible before any callback of this step answers a
    // client, so a client that reads /metrics after its reply sees its own prefix-cache hits.
    publish_scheduler_stats();
    // Only chunks that reach the end of their sequence's known tokens need logits: the last
    // row, or every row of a verification (the drafts' and the bonus token's).
    std::vector<SequenceInput> batch;
    for (const ScheduledChunk& chunk : plan.chunks) {
        const LogitRows rows = !chunk.completes     ? LogitRows::none
                               : chunk.n_drafts > 0 ? LogitRows::all
                                                    : LogitRows::last;
        batch.push_back({chunk.token_ids, chunk.n_cached, chunk.block_table, rows});
    }
    // On a device, where every sampler of the step needs only its row's most likely tokens
    // (greedy: one; top_k) and no log-probabilities are asked for, the device picks them
    // (forward_top_k) and sends back k pairs a row instead of the vocabulary's logits.
    int64_t candidates = 0;
    if (model_.weights().device().is_cuda()) {
        candidates = 1;
        for (const ScheduledChunk& chunk : plan.chunks) {
            const Sequence& sequence = *sequences_.at(chunk.id);
            if (!chunk.completes) continue;
            const int64_t needed = sequence.sampler->tokens_needed();
            const bool fits =
                needed > 0 && needed <= std::min(kTopKMax, model_.config().vocab_size);
            if (!fits || sequence.request.logprobs || sequence.request.top_logprobs > 0) {
                candidates = 0;
                break;
            }
            candidates = std::max(candidates, needed);
        }
    }
    StepLogits logits;
    try {
        logits = candidates > 0
                     ? StepLogits::candidates(model_.forward_top_k(batch, *pool_, candidates))
                     : StepLogits::full(model_.forward(batch, *pool_));
    } catch (const std::exception& error) {
        spdlog::error("engine step failed: {}", error.what());
        for (const ScheduledChunk& chunk : plan.chunks) {
            finish(*sequences_.at(chunk.id), "error", error.what());
        }
        scheduler_->discard_failed_step();
        return;
    }

    const auto now = Clock::now();
    int64_t prompt_tokens = 0, generated = 0, next_row = 0;
    int64_t drafts = 0, draft_tokens = 0, accepted_tokens = 0;
    std::vector<int64_t> accepted_per_position(options_.speculative.num_speculative_tokens, 0);
    std::vector<double> inter_token;
    // The step's counts so far into the metrics, and from zero again: before a request finishes,
    // so that a client reading /metrics after its response sees all of its tokens.
    auto publish_counts = [&] {
        std::lock_guard lock(mutex_);
        stats_.prompt_tokens_total += std::exchange(prompt_tokens, 0);
        stats_.generation_tokens_total += std::exchange(generated, 0);
        stats_.inter_token_s.insert(stats_.inter_token_s.end(), inter_token.begin(),
                                    inter_token.end());
        inter_token.clear();
        stats_.spec_drafts += std::exchange(drafts, 0);
        stats_.spec_draft_tokens += std::exchange(draft_tokens, 0);
        stats_.spec_accepted_tokens += std::exchange(accepted_tokens, 0);
        for (size_t i = 0; i < accepted_per_position.size(); ++i) {
            stats_.spec_accepted_per_position[i] += std::exchange(accepted_per_position[i], 0);
        }
    };
    for (const ScheduledChunk& chunk : plan.chunks) {
        Sequence& sequence = *sequences_.at(chunk.id);
        if (!chunk.completes) {  // more prompt to come: no token yet
            scheduler_->commit(chunk);
            continue;
        }
        const int64_t n_rows = 1 + chunk.n_drafts, first_row = next_row;
        next_row += n_rows;
        if (!logits.finite(first_row, n_rows)) {
            finish(sequence, "error", "the model produced non-finite logits");
            continue;
        }
        // Verification (a plain decode is the case without drafts): row i predicts the token
        // after the chunk's i-th; each draft stands while the sampler agrees with it, and the
        // first disagreement, or the row after the last draft, gives one more token.
        std::span<const int32_t> draft(chunk.token_ids.end() - chunk.n_drafts,
                                       chunk.token_ids.end());
        std::vector<std::pair<int32_t, int64_t>> emitted;  // (token, row)
        int64_t n_accepted = 0;
        for (int64_t i = 0; i < n_rows; ++i) {
            const int32_t token = i < chunk.n_drafts
                                      ? logits.verify(*sequence.sampler, first_row + i, draft[i])
                                      : logits.sample(*sequence.sampler, first_row + i);
            emitted.emplace_back(token, i);
            if (i == chunk.n_drafts || token != draft[i]) break;
            ++n_accepted;
        }
        scheduler_->commit(chunk, n_accepted);
        if (chunk.n_drafts > 0) {
            ++drafts;
            draft_tokens += chunk.n_drafts;
            accepted_tokens += n_accepted;
            for (int64_t i = 0; i < n_accepted; ++i) ++accepted_per_position[i];
            sequence.draft_length.observe(chunk.n_drafts, n_accepted);
        }

        const char* finish_reason = nullptr;
        for (const auto& [token, row_index] : emitted) {
            TokenEvent event = token_event(sequence, logits.row(first_row + row_index), token);
            if (sequence.n_output == 0) {
                // As vLLM counts them: a request's whole prompt, cached part included, once,
                // when its first token comes (recomputing after a preemption does not count).
                prompt_tokens += static_cast<int64_t>(sequence.request.prompt_ids.size());
                sequence.time_to_first_token_s = seconds_between(sequence.submitted, now);
            } else {
                inter_token.push_back(seconds_between(sequence.last_token, now));
            }
            sequence.last_token = now;
            ++sequence.n_output;
            scheduler_->append_token(sequence.id, token);
            ++generated;
            if (sequence.on_token) sequence.on_token(event);

            const auto& stops = sequence.request.stop_token_ids;
            if (!sequence.request.ignore_eos &&
                std::find(stops.begin(), stops.end(), token) != stops.end()) {
                finish_reason = "stop";
            } else if (sequence.n_output >= sequence.request.max_tokens ||
                       scheduler_->n_tokens(sequence.id) >= options_.max_model_len) {
                finish_reason = "length";
            }
            if (finish_reason) break;  // tokens verified past a stop are dropped
        }
        if (finish_reason) {
            publish_counts();
            finish(sequence, finish_reason);
        } else {
            propose_drafts(sequence);
        }
    }
    publish_counts();
}

}  // namespace fourbit
