// The scheduler without a model: the budget goes to decodes before prompt chunks, a pool that
// runs out preempts the newest sequence (which comes back first and is recomputed), admission
// is first come first served, and a repeated prefix starts after its cached blocks.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <numeric>

namespace fourbit {
namespace {

std::vector<int32_t> tokens(int64_t n, int32_t first = 1) {
    std::vector<int32_t> out(n);
    std::iota(out.begin(), out.end(), first);
    return out;
}

SchedulerOptions options(int64_t num_blocks, int64_t budget, int64_t block_size = 4) {
    SchedulerOptions out;
    out.num_blocks = num_blocks;
    out.max_num_batched_tokens = budget;
    out.block_size = block_size;
    return out;
}

// Runs one step as the engine would: commit, then a token for every chunk that completes.
StepPlan run_step(Scheduler& scheduler, int32_t next_token = 7) {
    StepPlan plan = scheduler.schedule();
    for (const ScheduledChunk& chunk : plan.chunks) {
        scheduler.commit(chunk);
        if (chunk.completes) scheduler.append_token(chunk.id, next_token);
    }
    return plan;
}

TEST(Scheduler, DecodesGoFirstAndPromptsAreChunkedUnderTheBudget) {
    Scheduler scheduler(options(64, 6));
    scheduler.add(1, tokens(3));
    StepPlan first = run_step(scheduler);
    ASSERT_EQ(first.chunks.size(), 1u);
    EXPECT_EQ(first.chunks[0].token_ids.size(), 3u);
    EXPECT_TRUE(first.chunks[0].completes);
    scheduler.add(2, tokens(20, 100));
    StepPlan second = run_step(scheduler);
    ASSERT_EQ(second.chunks.size(), 2u);
    EXPECT_EQ(second.chunks[0].id, 1u) << "the decode first";
    EXPECT_EQ(second.chunks[0].token_ids.size(), 1u);
    EXPECT_EQ(second.chunks[0].n_cached, 3);
    EXPECT_EQ(second.chunks[1].id, 2u);
    EXPECT_EQ(second.chunks[1].token_ids.size(), 5u) << "the rest of the budget of 6";
    EXPECT_FALSE(second.chunks[1].completes);
    StepPlan third = run_step(scheduler);
    ASSERT_EQ(third.chunks.size(), 2u);
    EXPECT_EQ(third.chunks[1].n_cached, 5) << "the prompt continues where it stopped";
    EXPECT_EQ(third.chunks[1].token_ids[0], 105);
}

TEST(Scheduler, ARunningOutPoolPreemptsTheNewestAndBringsItBackFirst) {
    // 6 blocks of 4. A (8 tokens, 2 blocks) and B (12 tokens, 3 blocks) fit; when A needs a
    // third block and then B a fourth, B, the newer, is preempted, then readmitted first.
    Scheduler scheduler(options(6, 64));
    scheduler.add(1, tokens(8));
    scheduler.add(2, tokens(12, 50));
    StepPlan admitted = run_step(scheduler);
    ASSERT_EQ(admitted.chunks.size(), 2u);
    EXPECT_EQ(scheduler.kv_stats().num_blocks_in_use, 5);
    scheduler.add(3, tokens(4, 90));  // waits: 1 block left, but A and B grow first
    int preempted_b = 0;
    for (int step = 0; step < 12 && preempted_b == 0; ++step) {
        StepPlan plan = run_step(scheduler);
        for (uint64_t id : plan.preempted) {
            EXPECT_NE(id, 1u) << "the oldest is never the victim while a newer one runs";
            if (id == 2) ++preempted_b;
        }
    }
    ASSERT_EQ(preempted_b, 1);
    EXPECT_EQ(scheduler.num_preemptions(), 1);
    EXPECT_EQ(scheduler.num_running(), 1);
    // B comes back before C and recomputes everything it knew, outputs included.
    const int64_t b_tokens = scheduler.n_tokens(2);
    EXPECT_GT(b_tokens, 12);
    scheduler.remove(1);  // A finishes
    StepPlan resumed = scheduler.schedule();
    ASSERT_FALSE(resumed.chunks.empty());
    EXPECT_EQ(resumed.chunks[0].id, 2u);
    EXPECT_EQ(resumed.chunks[0].n_cached + int64_t(resumed.chunks[0].token_ids.size()), b_tokens);
    EXPECT_TRUE(resumed.chunks[0].completes);
}

TEST(Scheduler, AdmissionIsFirstComeFirstServed) {
    // The head of the queue needs more blocks than are free; the small request behind it must
    // not overtake it.
    Scheduler scheduler(options(4, 64));
    scheduler.add(1, tokens(8));  // 2 blocks
    run_step(scheduler);
    scheduler.add(2, tokens(12, 30));  // 3 blocks: does not fit beside A's 2 (+1 to grow)
    scheduler.add(3, tokens(2, 60));   // would fit
    StepPlan plan = run_step(scheduler);
    for (const ScheduledChunk& chunk : plan.chunks) EXPECT_NE(chunk.id, 3u);
    EXPECT_EQ(scheduler.num_waiting(), 2);
}

TEST(Scheduler, SeatsLimitTheRunningBatch) {
    SchedulerOptions limited = options(64, 64);
    limited.max_num_seqs = 2;
    Scheduler scheduler(limited);
    for (uint64_t id = 1; id <= 3; ++id) scheduler.add(id, tokens(3));
    StepPlan plan = run_step(scheduler);
    EXPECT_EQ(plan.chunks.size(), 2u);
    EXPECT_EQ(scheduler.num_waiting(), 1);
}

TEST(Scheduler, ARepeatedPrefixStartsAfterItsCachedBlocks) {
    Scheduler scheduler(options(32, 64));
    scheduler.add(1, tokens(10));
    run_step(scheduler);
    scheduler.remove(1);  // finished: its two full blocks stay cached
    std::vector<int32_t> longer = tokens(10);
    longer.push_back(99);
    longer.push_back(98);
    scheduler.add(2, longer);
    StepPlan plan = scheduler.schedule();
    ASSERT_EQ(plan.chunks.size(), 1u);
    EXPECT_EQ(plan.chunks[0].n_cached, 8) << "two full blocks of 4";
    EXPECT_EQ(plan.chunks[0].token_ids.size(), 4u);
    EXPECT_EQ(scheduler.kv_stats().prefix_cache_hit_tokens, 8);
}

TEST(Scheduler, PrefixCachingOffFindsNothing) {
    SchedulerOptions off = options(32, 64);
    off.enable_prefix_caching = false;
    Scheduler scheduler(off);
    scheduler.add(1, tokens(10));
    run_step(scheduler);
    scheduler.remove(1);
    scheduler.add(2, tokens(10));
    StepPlan plan = scheduler.schedule();
    ASSERT_EQ(plan.chunks.size(), 1u);
    EXPECT_EQ(plan.chunks[0].n_cached, 0);
}

TEST(Scheduler, DraftsRideOnADecodeAndOnlyAcceptedOnesCount) {
    Scheduler scheduler(options(64, 8));
    scheduler.add(1, tokens(5));
    run_step(scheduler, 42);  // prefill; the sequence now knows 6 tokens, 5 computed
    scheduler.set_drafts(1, {43, 44, 45});
    StepPlan plan = scheduler.schedule();
    ASSERT_EQ(plan.chunks.size(), 1u);
    const ScheduledChunk& chunk = plan.chunks[0];
    EXPECT_EQ(chunk.n_drafts, 3);
    EXPECT_EQ(std::vector<int32_t>(chunk.token_ids.begin(), chunk.token_ids.end()),
              (std::vector<int32_t>{42, 43, 44, 45}));
    EXPECT_EQ(chunk.n_cached, 5);
    EXPECT_TRUE(chunk.completes);
    // The first draft is accepted, the second rejected (the model said 50 instead).
    scheduler.commit(chunk, 1);
    scheduler.append_token(1, 43);
    scheduler.append_token(1, 50);
    StepPlan next = scheduler.schedule();
    ASSERT_EQ(next.chunks.size(), 1u);
    EXPECT_EQ(next.chunks[0].n_cached, 7) << "5 + the decoded token + one accepted draft";
    EXPECT_EQ(next.chunks[0].token_ids[0], 50);
    EXPECT_EQ(next.chunks[0].n_drafts, 0) << "drafts are used once";
    // Drafts of rejected positions never became prefix-cache keys: 2 full blocks of 4 at most
    // (positions 0-7 hold known tokens 1..5, 42, 43, 50 once computed).
    EXPECT_LE(scheduler.kv_stats().num_blocks_in_use, 3);
}

TEST(Scheduler, DraftsTakeOnlyTheBudgetLeftByDecodes) {
    Scheduler scheduler(options(64, 4));
    scheduler.add(1, tokens(2));
    scheduler.add(2, tokens(2, 10));
    run_step(scheduler);
    scheduler.set_drafts(1, {7, 7, 7, 7, 7});
    StepPlan plan = scheduler.schedule();
    ASSERT_EQ(plan.chunks.size(), 2u);
    EXPECT_EQ(plan.chunks[0].n_drafts, 2) << "budget 4: one token for each decode, 2 for drafts";
    EXPECT_EQ(plan.chunks[1].token_ids.size(), 1u) << "the other decode keeps its token";
}

TEST(Scheduler, AFailedStepLeavesNoKeysWithoutKv) {
    Scheduler scheduler(options(32, 64));
    scheduler.add(1, tokens(10));
    StepPlan plan = scheduler.schedule();  // its forward "fails": no commit
    scheduler.remove(1);
    scheduler.discard_failed_step();
    scheduler.add(2, tokens(10));
    StepPlan retry = scheduler.schedule();
    ASSERT_EQ(retry.chunks.size(), 1u);
    EXPECT_EQ(retry.chunks[0].n_cached, 0) << "blocks keyed by the failed step were dropped";
}

}  // namespace
}  // namespace fourbit
