// The scheduler: which sequences run in the next step, with how many new tokens, in which KV
// blocks (vLLM v1's scheduler, engine.md §2-§4). It knows no model and no device: it hands the
// engine one plain plan per step, and owns the paged cache's bookkeeping (KvBlockManager).
//
// Policy, per step, under max_num_batched_tokens:
//   1. decodes first (one token each), then prompt chunks of running sequences, oldest first,
//      so a long prompt never stalls the sequences already generating;
//   2. when the pool has no block for a running sequence, the newest running sequence not yet
//      scheduled in this step is preempted: its blocks are freed (full ones stay in the prefix
//      cache) and it goes back to the head of the queue, to be recomputed from its prompt and
//      outputs (recompute, not swap: there is no second memory tier on a CPU, and the prefix
//      cache usually still holds most of its blocks);
//   3. if nothing was preempted, waiting sequences are admitted first come, first served while
//      there are seats (max_num_seqs), budget and blocks, each starting after its longest
//      cached prefix (automatic prefix caching: a repeated prefix skips its prefill).
// Speculative drafts (set_drafts) ride on a decode: its chunk is the last token plus the drafts.
// They take only budget left after every decode has its token, and blocks are allocated for
// them, but they never enter the prefix cache's keys (only known tokens do) and commit() counts
// only the accepted ones as computed: a rejected draft's slot is simply overwritten later.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/kv_block_manager.h"

namespace fourbit {

struct SchedulerOptions {
    int64_t max_num_seqs = 16;
    int64_t max_num_batched_tokens = 4096;  // EngineOptions' default
    int64_t num_blocks = 0;
    int64_t block_size = 16;
    bool enable_prefix_caching = true;
};

// One sequence's work in a step. The spans stay valid until the scheduler is next changed.
struct ScheduledChunk {
    uint64_t id = 0;
    std::span<const int32_t> token_ids;    // the new tokens, at positions n_cached ...
    int64_t n_cached = 0;                  // positions whose KV the sequence's blocks hold
    std::span<const int32_t> block_table;  // covers n_cached + token_ids.size() positions
    bool completes = false;  // reaches the end of the known tokens: the last row is sampled
    int64_t n_drafts = 0;    // the last n_drafts of token_ids are drafts to verify
};

struct StepPlan {
    std::vector<ScheduledChunk> chunks;
    std::vector<uint64_t> preempted;  // sent back to the queue in this step
    bool empty() const { return chunks.empty(); }
};

class Scheduler {
public:
    explicit Scheduler(const SchedulerOptions& options);

    // Queues a sequence behind the others. Ids are unique; the prompt is not empty.
    void add(uint64_t id, std::vector<int32_t> prompt_ids);
    // Forgets a sequence, waiting or running, and frees its blocks. Call it only between a
    // step's commit() and the next schedule() (or for a sequence not in the current plan).
    void remove(uint64_t id);

    StepPlan schedule();
    // The plan's forward pass ran: every chunk's tokens now have KV, but for the drafts after
    // the first rejected one: n_accepted drafts of the chunk count as computed.
    void commit(const ScheduledChunk& chunk, int64_t n_accepted = 0);
    // A sequence that completed its known tokens in the committed step got a new token (after
    // a verification: every accepted draft, then the correction or bonus token).
    void append_token(uint64_t id, int32_t token_id);
    // Drafts for a sequence's next decode (replacing any it had); ignored unless exactly its
    // last known token is still to compute.
    void set_drafts(uint64_t id, std::vector<int32_t> drafts);
    // The plan's forward pass failed: its sequences are removed by the caller; this drops the
    // prefix-cache keys that step may have made for blocks that hold no KV.
    void discard_failed_step();

    bool contains(uint64_t id) const { return sequences_.contains(id); }
    int64_t n_tokens(uint64_t id) const;  // prompt plus outputs
    std::span<const int32_t> tokens(uint64_t id) const;  // valid until the sequence changes
    int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
    int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
    int64_t num_preemptions() const { return num_preemptions_; }
    KvCacheStats kv_stats() const { return kv_.stats(); }
    const SchedulerOptions& options() const { return options_; }

private:
    struct SequenceState {
        std::vector<int32_t> tokens;  // prompt, then outputs: what the cache must come to hold
        int64_t n_computed = 0;       // positions whose KV the sequence's blocks hold
        std::vector<int32_t> drafts{};       // for the next decode
        std::vector<int32_t> step_tokens{};  // a decode's chunk with drafts: last token, drafts
    };

    void preempt(uint64_t id);

    SchedulerOptions options_;
    KvBlockManager kv_;
    std::unordered_map<uint64_t, SequenceState> sequences_;
    std::vector<uint64_t> running_;  // oldest first
    std::deque<uint64_t> waiting_;   // next to admit first
    int64_t num_preemptions_ = 0;
};

}  // namespace fourbit
