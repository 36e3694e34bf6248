#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <span>

#include "model/kv_cache.h"
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

}  // namespace

struct Engine::Sequence {
    uint64_t id = 0;
    GenerationRequest request;
    TokenCallback on_token;
    FinishCallback on_finish;
    std::unique_ptr<KvCache> cache;
    std::unique_ptr<Sampler> sampler;
    int64_t prefilled = 0;  // prompt tokens in the cache
    std::vector<int32_t> output;
    Clock::time_point submitted, last_token;
    double time_to_first_token_s = 0;
    bool finished = false;

    bool prefill_done() const {
        return prefilled == static_cast<int64_t>(request.prompt_ids.size());
    }
};

Engine::Engine(const MiniMaxM2& model, const EngineOptions& options)
    : model_(model), options_(options) {
    if (options_.max_model_len <= 0)
        options_.max_model_len = model.config().max_position_embeddings;
    if (options_.max_num_seqs <= 0) fail("max_num_seqs must be positive");
    if (options_.max_num_batched_tokens <= 0) fail("max_num_batched_tokens must be positive");
    stats_.kv_tokens_capacity = options_.max_num_seqs * options_.max_model_len;
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
    sequence->cache = std::make_unique<KvCache>(model_.config());
    sequence->sampler = std::make_unique<Sampler>(sequence->request.sampling);
    sequence->submitted = Clock::now();
    uint64_t id;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) fail("the engine is shutting down");
        id = next_id_++;
        sequence->id = id;
        waiting_.push_back(std::move(sequence));
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
    if (sequence.finished) return;
    sequence.finished = true;
    FinishEvent event;
    event.reason = reason;
    event.error = error;
    event.prompt_tokens = static_cast<int64_t>(sequence.request.prompt_ids.size());
    event.completion_tokens = static_cast<int64_t>(sequence.output.size());
    event.time_to_first_token_s = sequence.time_to_first_token_s;
    {
        std::lock_guard lock(mutex_);
        ++stats_.requests_finished_total;
        if (!sequence.output.empty()) {
            stats_.time_to_first_token_s.push_back(sequence.time_to_first_token_s);
        }
    }
    if (sequence.on_finish) sequence.on_finish(event);
}

void Engine::run() {
    std::vector<std::unique_ptr<Sequence>> running;
    for (;;) {
        std::vector<std::unique_ptr<Sequence>> dropped;  // cancelled while waiting
        std::vector<uint64_t> cancelled;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] {
                return stopping_ || !waiting_.empty() || !running.empty() || !cancelled_.empty();
            });
            if (stopping_) {
                for (auto& sequence : waiting_) dropped.push_back(std::move(sequence));
                waiting_.clear();
            }
            cancelled.swap(cancelled_);
            for (auto it = waiting_.begin(); it != waiting_.end();) {
                if (std::find(cancelled.begin(), cancelled.end(), (*it)->id) != cancelled.end()) {
                    dropped.push_back(std::move(*it));
                    it = waiting_.erase(it);
                } else {
                    ++it;
                }
            }
            // First come, first served, up to max_num_seqs in the running batch.
            while (!waiting_.empty() &&
                   static_cast<int64_t>(running.size()) < options_.max_num_seqs) {
                running.push_back(std::move(waiting_.front()));
                waiting_.pop_front();
            }
            stats_.requests_waiting = static_cast<int64_t>(waiting_.size());
            stats_.requests_running = static_cast<int64_t>(running.size());
        }
        for (auto& sequence : dropped) finish(*sequence, "cancelled");
        for (auto& sequence : running) {
            if (stopping_ ||
                std::find(cancelled.begin(), cancelled.end(), sequence->id) != cancelled.end()) {
                finish(*sequence, "cancelled");
            }
        }
        std::erase_if(running, [](const auto& sequence) { return sequence->finished; });
        if (stopping_) return;
        if (!running.empty()) step(running);
        std::erase_if(running, [](const auto& sequence) { return sequence->finished; });
        int64_t kv_tokens = 0;
        for (const auto& sequence : running) kv_tokens += sequence->cache->n_tokens();
        std::lock_guard lock(mutex_);
        stats_.kv_tokens_in_use = kv_tokens;
        stats_.requests_running = static_cast<int64_t>(running.size());
    }
}

void Engine::step(std::vector<std::unique_ptr<Sequence>>& running) {
    // The step's token budget goes to decodes first (one token each), then to prompt chunks in
    // arrival order, so that a long prompt never stalls the sequences already generating.
    int64_t budget = options_.max_num_batched_tokens;
    std::vector<Sequence*> members;
    std::vector<std::vector<int32_t>> inputs;
    for (auto& sequence : running) {
        if (!sequence->prefill_done() || budget == 0) continue;
        members.push_back(sequence.get());
        inputs.push_back({sequence->output.back()});
        --budget;
    }
    for (auto& sequence : running) {
        if (sequence->prefill_done() || budget == 0) continue;
        const auto& prompt = sequence->request.prompt_ids;
        const int64_t chunk =
            std::min<int64_t>(budget, static_cast<int64_t>(prompt.size()) - sequence->prefilled);
        members.push_back(sequence.get());
        inputs.emplace_back(prompt.begin() + sequence->prefilled,
                            prompt.begin() + sequence->prefilled + chunk);
        budget -= chunk;
    }
    if (members.empty()) return;

    std::vector<SequenceInput> batch;
    for (size_t i = 0; i < members.size(); ++i) {
        batch.push_back({inputs[i], members[i]->cache.get(), false});
    }
    Tensor logits;
    try {
        logits = model_.forward(batch);
    } catch (const std::exception& error) {
        spdlog::error("engine step failed: {}", error.what());
        for (Sequence* sequence : members) finish(*sequence, "error", error.what());
        return;
    }

    const auto now = Clock::now();
    const int64_t vocab = logits.dim(1);
    int64_t prompt_tokens = 0, generated = 0;
    std::vector<double> inter_token;
    for (size_t i = 0; i < members.size(); ++i) {
        Sequence& sequence = *members[i];
        if (!sequence.prefill_done()) {
            sequence.prefilled += static_cast<int64_t>(inputs[i].size());
            prompt_tokens += static_cast<int64_t>(inputs[i].size());
            if (!sequence.prefill_done()) continue;  // more prompt to come: no token yet
        }
        std::span<const float> row(logits.data<float>() + i * vocab, static_cast<size_t>(vocab));
        if (std::any_of(row.begin(), row.end(), [](float x) { return !std::isfinite(x); })) {
            finish(sequence, "error", "the model produced non-finite logits");
            continue;
        }
        TokenEvent event;
        event.token_id = sequence.sampler->sample(row);
        if (sequence.request.logprobs || sequence.request.top_logprobs > 0) {
            std::vector<float> log_probabilities = log_softmax(row);
            event.logprob = log_probabilities[event.token_id];
            std::vector<int32_t> order(vocab);
            for (int32_t id = 0; id < vocab; ++id) order[id] = id;
            const int64_t k = std::min<int64_t>(sequence.request.top_logprobs, vocab);
            std::partial_sort(order.begin(), order.begin() + k, order.end(),
                              [&](int32_t a, int32_t b) {
                                  return log_probabilities[a] > log_probabilities[b] ||
                                         (log_probabilities[a] == log_probabilities[b] && a < b);
                              });
            for (int64_t j = 0; j < k; ++j) {
                event.top_logprobs.emplace_back(order[j], log_probabilities[order[j]]);
            }
        }
        if (sequence.output.empty()) {
            sequence.time_to_first_token_s = seconds_between(sequence.submitted, now);
        } else {
            inter_token.push_back(seconds_between(sequence.last_token, now));
        }
        sequence.last_token = now;
        sequence.output.push_back(event.token_id);
        ++generated;
        if (sequence.on_token) sequence.on_token(event);

        const auto& stops = sequence.request.stop_token_ids;
        const bool stop = !sequence.request.ignore_eos &&
                          std::find(stops.begin(), stops.end(), event.token_id) != stops.end();
        const int64_t context = sequence.cache->n_tokens() + 1;
        if (stop) {
            finish(sequence, "stop");
        } else if (static_cast<int64_t>(sequence.output.size()) >= sequence.request.max_tokens ||
                   context >= options_.max_model_len) {
            finish(sequence, "length");
        }
    }
    std::lock_guard lock(mutex_);
    stats_.prompt_tokens_total += prompt_tokens;
    stats_.generation_tokens_total += generated;
    stats_.inter_token_s.insert(stats_.inter_token_s.end(), inter_token.begin(), inter_token.end());
}

}  // namespace fourbit
