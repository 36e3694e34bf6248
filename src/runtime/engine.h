// The serving engine: requests join and leave one running batch at every step (continuous
// batching); long prompts are prefilled in chunks under a per-step token budget so that
// running decodes keep going; keys and values live in a paged pool shared by all sequences,
// with automatic prefix caching (the Scheduler decides, the engine runs the model). One engine
// thread runs the model; callers submit requests from any thread and hear back through
// callbacks, which run on the engine thread and must be quick.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/minimax_m2.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "runtime/speculation.h"

namespace fourbit {

struct EngineOptions {
    int64_t max_num_seqs = 16;              // sequences in the running batch at most
    // Tokens one step may run (prefill chunks + decodes). 4096: on Hopper a prompt's chunks of
    // 4096 run ~11% faster per token than chunks of 2048 (each expert's GEMM tiles fill with
    // ~128 routed slots on M2 rather than ~64; bench/results/cuda_model.md), for ~0.5 GB more
    // workspace on M2 and a longer pause of the running decodes per chunk. (vLLM's default
    // for an API server on a 70+ GB GPU is 8192.)
    int64_t max_num_batched_tokens = 4096;
    int64_t max_model_len = 0;              // prompt + output per sequence; 0: the model's
    int64_t kv_block_size = 32;             // tokens per KV block (engine.md §2.1)
    // The KV pool, on the model's device: num_kv_blocks if set, else as many blocks as
    // kv_cache_memory_bytes holds, else enough for max_num_seqs full contexts but at most a
    // quarter of physical memory (host) or what gpu_memory_utilization of the card leaves
    // after the weights and the workspace (CUDA; runtime/device_memory_plan.h). It must hold
    // at least one max_model_len context (else the constructor says so).
    int64_t num_kv_blocks = 0;
    int64_t kv_cache_memory_bytes = 0;
    double gpu_memory_utilization = 0.9;
    // The pool's keys and values: f32, or bf16 for half the memory (ops/attention.h).
    DType kv_cache_dtype = DType::f32;
    bool enable_prefix_caching = true;
    // N-gram speculative decoding (off unless num_speculative_tokens > 0).
    SpeculativeConfig speculative;
};

struct GenerationRequest {
    std::vector<int32_t> prompt_ids;
    SamplingParams sampling;
    int64_t max_tokens = 16;  // the caller resolves defaults (e.g. the rest of the context)
    std::vector<int64_t> stop_token_ids;  // end the output, and are part of it
    bool ignore_eos = false;              // if set, stop_token_ids are ignored
    int top_logprobs = 0;                 // alternatives reported per token (0: none)
    bool logprobs = false;                // report the chosen token's log-probability
};

struct TokenEvent {
    int32_t token_id = 0;
    float logprob = 0.0f;                                 // when requested
    std::vector<std::pair<int32_t, float>> top_logprobs;  // most likely first
};

struct FinishEvent {
    std::string reason;  // "stop" (a stop token), "length" (max_tokens or the context),
                         // "cancelled", or "error"
    std::string error;   // the message, for "error"
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    double time_to_first_token_s = 0;
};

using TokenCallback = std::function<void(const TokenEvent&)>;
using FinishCallback = std::function<void(const FinishEvent&)>;

// What the engine is doing, for /metrics and /health; a consistent snapshot.
struct EngineStats {
    int64_t requests_running = 0;
    int64_t requests_waiting = 0;
    int64_t prompt_tokens_total = 0;
    int64_t generation_tokens_total = 0;
    int64_t requests_finished_total = 0;
    int64_t kv_blocks_total = 0;
    int64_t kv_blocks_in_use = 0;          // held by a running sequence (cached-only ones are free)
    int64_t prefix_cache_queries = 0;      // prompt tokens of admitted sequences
    int64_t prefix_cache_hits = 0;         // of those, tokens whose KV came from the cache
    int64_t num_preemptions = 0;
    // Speculative decoding, as vLLM counts it (engine.md §4.3).
    int64_t spec_drafts = 0;          // verifications with at least one draft token
    int64_t spec_draft_tokens = 0;    // draft tokens verified
    int64_t spec_accepted_tokens = 0;
    std::vector<int64_t> spec_accepted_per_position;  // [i]: drafts with >= i + 1 accepted
    std::vector<double> time_to_first_token_s;  // of requests finished since the last call
    std::vector<double> inter_token_s;          // of tokens generated since the last call
};

class Engine {
public:
    Engine(const MiniMaxM2& model, const EngineOptions& options);
    ~Engine();  // cancels what is left and stops the thread
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues a request; returns its id. The finish callback runs exactly once. A request that
    // cannot run (empty prompt, prompt + max_tokens over max_model_len, bad sampling
    // parameters) throws Error here, before it is queued.
    uint64_t submit(GenerationRequest request, TokenCallback on_token, FinishCallback on_finish);
    // Stops a request (a client went away): it finishes with "cancelled" at the next step and
    // its cache is freed. Unknown or finished ids are ignored.
    void cancel(uint64_t request_id);

    // Takes the stats; the latency samples are handed over once.
    EngineStats take_stats();
    const EngineOptions& options() const { return options_; }  // with defaults resolved

private:
    struct Sequence;
    void run();
    void step();
    void publish_scheduler_stats();
    // The token event for `token_id` sampled from `row`, log-probabilities as requested.
    TokenEvent token_event(const Sequence& sequence, std::span<const float> row,
                           int32_t token_id) const;
    // Drafts for a sequence's next step, when speculation is on and pays.
    void propose_drafts(Sequence& sequence);
    // Ends a sequence: the callback, the stats, and its blocks back to the pool.
    void finish(Sequence& sequence, const std::string& reason, const std::string& error = "");

    const MiniMaxM2& model_;
    EngineOptions options_;
    std::unique_ptr<KvPool> pool_;
    std::unique_ptr<Scheduler> scheduler_;  // the engine thread's alone
    std::unordered_map<uint64_t, std::unique_ptr<Sequence>> sequences_;  // the engine thread's
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::unique_ptr<Sequence>> submitted_;  // not yet handed to the scheduler
    std::vector<uint64_t> cancelled_;
    uint64_t next_id_ = 1;
    bool stopping_ = false;
    EngineStats stats_;
    std::thread thread_;
};

}  // namespace fourbit
