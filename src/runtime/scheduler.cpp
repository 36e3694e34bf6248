#include "runtime/scheduler.h"

#include <algorithm>

#include "util/error.h"

namespace fourbit {

namespace {

KvBlockManagerOptions manager_options(const SchedulerOptions& options) {
    KvBlockManagerOptions out;
    out.num_blocks = options.num_blocks;
    out.block_size = options.block_size;
    out.enable_prefix_caching = options.enable_prefix_caching;
    return out;
}

}  // namespace

Scheduler::Scheduler(const SchedulerOptions& options)
    : options_(options), kv_(manager_options(options)) {
    FOURBIT_ASSERT(options.max_num_seqs > 0 && options.max_num_batched_tokens > 0 &&
                       options.num_blocks > 0 && options.block_size > 0,
                   "scheduler options");
}

void Scheduler::add(uint64_t id, std::vector<int32_t> prompt_ids) {
    FOURBIT_ASSERT(!prompt_ids.empty(), "sequence {} has no prompt", id);
    const bool inserted = sequences_.emplace(id, SequenceState{std::move(prompt_ids), 0}).second;
    FOURBIT_ASSERT(inserted, "sequence {} added twice", id);
    waiting_.push_back(id);
}

void Scheduler::remove(uint64_t id) {
    if (sequences_.erase(id) == 0) return;
    kv_.free(id);
    std::erase(running_, id);
    std::erase(waiting_, id);
}

int64_t Scheduler::n_tokens(uint64_t id) const {
    return static_cast<int64_t>(sequences_.at(id).tokens.size());
}

std::span<const int32_t> Scheduler::tokens(uint64_t id) const { return sequences_.at(id).tokens; }

void Scheduler::set_drafts(uint64_t id, std::vector<int32_t> drafts) {
    SequenceState& state = sequences_.at(id);
    if (static_cast<int64_t>(state.tokens.size()) - state.n_computed != 1) return;
    state.drafts = std::move(drafts);
}

void Scheduler::preempt(uint64_t id) {
    kv_.free(id);
    SequenceState& state = sequences_.at(id);
    state.n_computed = 0;
    state.drafts.clear();
    ++num_preemptions_;
}

StepPlan Scheduler::schedule() {
    StepPlan plan;
    int64_t budget = options_.max_num_batched_tokens;
    std::vector<bool> scheduled(running_.size(), false), preempted(running_.size(), false);

    auto add_chunk = [&](uint64_t id, SequenceState& state, int64_t n_new,
                         const KvAllocation& allocation) {
        std::span<const int32_t> tokens(state.tokens);
        const int64_t n_drafts = n_new - std::min<int64_t>(n_new, tokens.size() - state.n_computed);
        std::span<const int32_t> chunk_tokens = tokens.subspan(state.n_computed, n_new - n_drafts);
        if (n_drafts > 0) {
            state.step_tokens.assign(1, tokens.back());
            state.step_tokens.insert(state.step_tokens.end(), state.drafts.begin(),
                                     state.drafts.begin() + n_drafts);
            chunk_tokens = state.step_tokens;
        }
        plan.chunks.push_back(
            {id, chunk_tokens, state.n_computed, allocation.block_ids,
             state.n_computed + n_new - n_drafts == static_cast<int64_t>(tokens.size()),
             n_drafts});
        state.drafts.clear();
        budget -= n_new;
    };
    // The victim when sequence i finds no block: the newest running sequence this step has not
    // scheduled (its blocks hold finished KV, so freeing them is safe), else i itself.
    auto victim_for = [&](size_t i) {
        for (size_t j = running_.size(); j-- > 0;) {
            if (j != i && !scheduled[j] && !preempted[j]) return j;
        }
        return i;
    };

    // Drafts get only what is left once every decode has its one token.
    int64_t n_decodes = 0;
    for (uint64_t id : running_) {
        const SequenceState& state = sequences_.at(id);
        n_decodes += static_cast<int64_t>(state.tokens.size()) - state.n_computed == 1;
    }
    int64_t draft_budget = std::max<int64_t>(0, budget - n_decodes);

    for (const bool decode_pass : {true, false}) {
        for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
            if (scheduled[i] || preempted[i]) continue;
            const uint64_t id = running_[i];
            SequenceState& state = sequences_.at(id);
            const int64_t remaining = static_cast<int64_t>(state.tokens.size()) - state.n_computed;
            if ((remaining == 1) != decode_pass) continue;
            int64_t n_new = std::min(remaining, budget);
            if (decode_pass) {
                const int64_t n_drafts = std::min({static_cast<int64_t>(state.drafts.size()),
                                                   draft_budget, budget - 1});
                state.drafts.resize(n_drafts);
                draft_budget -= n_drafts;
                n_new += n_drafts;
            }
            for (;;) {
                std::optional<KvAllocation> allocation =
                    kv_.allocate(id, state.tokens, state.n_computed, n_new);
                if (allocation) {
                    scheduled[i] = true;
                    add_chunk(id, state, n_new, *allocation);
                    break;
                }
                if (n_new > remaining) {  // drop the drafts before anybody's blocks
                    state.drafts.clear();
                    n_new = remaining;
                    continue;
                }
                const size_t victim = victim_for(i);
                preempted[victim] = true;
                preempt(running_[victim]);
                plan.preempted.push_back(running_[victim]);
                if (victim == i) break;
            }
        }
    }

    if (!plan.preempted.empty()) {
        // Back to the head of the queue, oldest first, ahead of everything that waits.
        std::vector<uint64_t> kept, sent_back;
        for (size_t i = 0; i < running_.size(); ++i) {
            (preempted[i] ? sent_back : kept).push_back(running_[i]);
        }
        running_ = std::move(kept);
        waiting_.insert(waiting_.begin(), sent_back.begin(), sent_back.end());
        return plan;  // no admissions in a step that had to preempt
    }

    while (!waiting_.empty() && num_running() < options_.max_num_seqs && budget > 0) {
        const uint64_t id = waiting_.front();
        SequenceState& state = sequences_.at(id);
        const int64_t cached =
            options_.enable_prefix_caching ? kv_.find_cached_prefix(state.tokens) : 0;
        const int64_t n_new =
            std::min(static_cast<int64_t>(state.tokens.size()) - cached, budget);
        std::optional<KvAllocation> allocation = kv_.allocate(id, state.tokens, cached, n_new);
        if (!allocation) break;  // first come, first served: nobody overtakes the head
        state.n_computed = cached;
        waiting_.pop_front();
        running_.push_back(id);
        add_chunk(id, state, n_new, *allocation);
    }
    return plan;
}

void Scheduler::commit(const ScheduledChunk& chunk, int64_t n_accepted) {
    FOURBIT_ASSERT(n_accepted >= 0 && n_accepted <= chunk.n_drafts, "{} of {} drafts accepted",
                   n_accepted, chunk.n_drafts);
    sequences_.at(chunk.id).n_computed = chunk.n_cached +
                                         static_cast<int64_t>(chunk.token_ids.size()) -
                                         (chunk.n_drafts - n_accepted);
}

void Scheduler::append_token(uint64_t id, int32_t token_id) {
    SequenceState& state = sequences_.at(id);
    // Accepted drafts are computed before they are appended as tokens, so the new token's
    // position may lie below n_computed, never above it.
    FOURBIT_ASSERT(state.n_computed >= static_cast<int64_t>(state.tokens.size()),
                   "sequence {} got a token before its known tokens were computed", id);
    state.tokens.push_back(token_id);
}

void Scheduler::discard_failed_step() { kv_.reset_prefix_cache(); }

}  // namespace fourbit
