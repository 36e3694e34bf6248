// The KV block manager: allocation and growth, admission failure, freeing, prefix hits (a
// repeated prompt, a multi-turn chat, the MiniMax-M2 template's dropped reasoning), position
// sensitivity of keys, shared blocks, LRU eviction order, the last-token rule, drafts, the hash
// chain (with known answers from Python's hashlib), and a randomized run that checks every
// invariant after each operation and, through a shadow of what the forward would write into
// each slot, that every position a request reads holds the KV of its own prefix.
#include "runtime/kv_block_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "util/error.h"

namespace fourbit {
namespace {

// A fixed root, so runs are reproducible; production uses random_root_hash().
KvBlockManager make_manager(int64_t num_blocks, int64_t block_size, bool caching = true) {
    KvBlockManagerOptions options;
    options.num_blocks = num_blocks;
    options.block_size = block_size;
    options.enable_prefix_caching = caching;
    options.root_hash = BlockHash{};
    return KvBlockManager(options);
}

std::vector<int32_t> iota_tokens(int64_t n, int32_t first) {
    std::vector<int32_t> tokens(n);
    for (int64_t i = 0; i < n; ++i) tokens[i] = first + static_cast<int32_t>(i);
    return tokens;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, int64_t n, int32_t vocab) {
    std::vector<int32_t> tokens(n);
    for (int32_t& token : tokens) token = static_cast<int32_t>(rng() % vocab);
    return tokens;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::vector<int32_t> table(const KvBlockManager& kv, uint64_t id) {
    const auto ids = kv.block_table(id);
    return {ids.begin(), ids.end()};
}

std::string hex(const BlockHash& hash) {
    static const char* digits = "0123456789abcdef";
    std::string text;
    for (uint8_t byte : hash.bytes) {
        text += digits[byte >> 4];
        text += digits[byte & 15];
    }
    return text;
}

void expect_same_stats(const KvCacheStats& a, const KvCacheStats& b) {
    EXPECT_EQ(a.num_blocks_in_use, b.num_blocks_in_use);
    EXPECT_EQ(a.num_blocks_cached, b.num_blocks_cached);
    EXPECT_EQ(a.num_blocks_free, b.num_blocks_free);
    EXPECT_EQ(a.prefix_cache_query_tokens, b.prefix_cache_query_tokens);
    EXPECT_EQ(a.prefix_cache_hit_tokens, b.prefix_cache_hit_tokens);
    EXPECT_EQ(a.num_evicted_blocks, b.num_evicted_blocks);
}

// A request as the scheduler sees it: known tokens and how many of them have KV.
struct Sequence {
    uint64_t id = 0;
    std::vector<int32_t> tokens;
    int64_t num_computed = 0;
};

// Admits with the cached prefix and prefills the rest of the prompt in one step.
bool admit(KvBlockManager& kv, Sequence& sequence) {
    const int64_t hit = kv.find_cached_prefix(sequence.tokens);
    const int64_t size = static_cast<int64_t>(sequence.tokens.size());
    if (!kv.allocate(sequence.id, sequence.tokens, hit, size - hit)) return false;
    sequence.num_computed = size;
    return true;
}

// Samples `token` (appended) and runs the decode step that computes it.
bool decode_step(KvBlockManager& kv, Sequence& sequence, int32_t token) {
    sequence.tokens.push_back(token);
    if (!kv.allocate(sequence.id, sequence.tokens, sequence.num_computed, 1)) {
        sequence.tokens.pop_back();
        return false;
    }
    ++sequence.num_computed;
    return true;
}

TEST(KvBlockManager, AllocatesAndGrowsAcrossBlockBoundaries) {
    KvBlockManager kv = make_manager(8, 4);
    const std::vector<int32_t> prompt = iota_tokens(5, 100);
    auto allocation = kv.allocate(1, prompt, 0, 5);
    ASSERT_TRUE(allocation);
    EXPECT_EQ(allocation->block_ids.size(), 2u);
    EXPECT_EQ(allocation->num_new_blocks, 2);
    const std::vector<int32_t> first = table(kv, 1);
    EXPECT_NE(first[0], first[1]);
    EXPECT_DOUBLE_EQ(kv.stats().usage(), 2.0 / 8);

    // Decode: positions 5..7 fit in block 1; position 8 needs block 2.
    Sequence sequence{1, prompt, 5};
    for (int32_t token = 0; token < 3; ++token) {
        ASSERT_TRUE(decode_step(kv, sequence, token));
        EXPECT_EQ(table(kv, 1), first);
    }
    ASSERT_TRUE(decode_step(kv, sequence, 3));
    const std::vector<int32_t> grown = table(kv, 1);
    ASSERT_EQ(grown.size(), 3u);
    EXPECT_TRUE(std::equal(first.begin(), first.end(), grown.begin()));
    EXPECT_EQ(kv.check_invariants(), "");

    // A chunked prefill grows one chunk at a time, in blocks of its own.
    // A block becomes findable only once the chunk that completes it is allocated.
    const std::vector<int32_t> other = iota_tokens(10, 500);
    EXPECT_EQ(kv.allocate(2, other, 0, 3)->block_ids.size(), 1u);
    EXPECT_EQ(kv.find_cached_prefix(other), 0);
    EXPECT_EQ(kv.allocate(2, other, 3, 3)->block_ids.size(), 2u);
    EXPECT_EQ(kv.find_cached_prefix(other), 4);
    auto last_chunk = kv.allocate(2, other, 6, 4);
    ASSERT_TRUE(last_chunk);
    EXPECT_EQ(last_chunk->block_ids.size(), 3u);
    EXPECT_EQ(last_chunk->num_new_blocks, 1);
    for (int32_t id : table(kv, 2)) {
        EXPECT_EQ(std::count(grown.begin(), grown.end(), id), 0);
    }
    EXPECT_EQ(kv.stats().num_blocks_in_use, 6);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, DraftSlotsAreAllocatedNeverCachedAndNotAllocatedTwice) {
    KvBlockManager kv = make_manager(8, 4);
    Sequence sequence{1, iota_tokens(6, 10), 0};
    ASSERT_TRUE(admit(kv, sequence));
    sequence.tokens.push_back(7);  // sampled; the next step computes it and 4 drafts
    auto with_drafts = kv.allocate(1, sequence.tokens, 6, 1 + 4);
    ASSERT_TRUE(with_drafts);
    EXPECT_EQ(with_drafts->block_ids.size(), 3u);  // positions 0..10
    // Block 1 (positions 4..7) holds a draft at 7: not findable.
    EXPECT_EQ(kv.find_cached_prefix(concat(sequence.tokens, {99, 1})), 4);

    // Every draft rejected: 7 positions computed, a correction sampled at position 7.
    sequence.num_computed = 7;
    sequence.tokens.push_back(42);
    auto next = kv.allocate(1, sequence.tokens, 7, 1);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->num_new_blocks, 0);  // the draft slots are reused, not added to
    EXPECT_EQ(next->block_ids.size(), 3u);
    EXPECT_EQ(kv.find_cached_prefix(concat(sequence.tokens, {1})), 8);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, AdmissionFailureLeavesStateUnchanged) {
    KvBlockManager kv = make_manager(4, 4);
    Sequence a{1, iota_tokens(9, 0), 0};
    ASSERT_TRUE(admit(kv, a));  // 3 blocks
    const KvCacheStats before = kv.stats();
    EXPECT_FALSE(kv.allocate(2, iota_tokens(8, 50), 0, 8));  // needs 2, 1 left
    EXPECT_FALSE(kv.holds(2));
    expect_same_stats(kv.stats(), before);
    EXPECT_EQ(kv.check_invariants(), "");

    // A running request that cannot grow keeps its table.
    Sequence c{3, iota_tokens(4, 80), 0};
    ASSERT_TRUE(admit(kv, c));
    const std::vector<int32_t> a_table = table(kv, 1);
    const KvCacheStats full = kv.stats();
    for (int32_t token = 0; token < 3; ++token) ASSERT_TRUE(decode_step(kv, a, token));
    EXPECT_FALSE(decode_step(kv, a, 3));  // position 12 needs a 4th block
    EXPECT_EQ(table(kv, 1), a_table);
    expect_same_stats(kv.stats(), full);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, CachedHitsAreNotCountedAsRoomForTheirOwnRequest) {
    KvBlockManager kv = make_manager(4, 4);
    const std::vector<int32_t> prompt = iota_tokens(9, 0);
    Sequence a{1, prompt, 0};
    ASSERT_TRUE(admit(kv, a));
    kv.free(1);  // 2 keyed blocks cached, 2 free
    ASSERT_EQ(kv.stats().num_blocks_cached, 2);
    ASSERT_EQ(kv.num_available_blocks(), 4);

    // 17 tokens = 5 blocks: 2 hits + 3 new, but only 2 blocks are not the hits themselves.
    const std::vector<int32_t> longer =
        concat({prompt.begin(), prompt.begin() + 8}, iota_tokens(9, 40));
    ASSERT_EQ(kv.find_cached_prefix(longer), 8);
    const KvCacheStats before = kv.stats();
    EXPECT_FALSE(kv.allocate(2, longer, 8, 9));
    expect_same_stats(kv.stats(), before);
    EXPECT_EQ(kv.find_cached_prefix(longer), 8);

    // 16 tokens = 4 blocks: 2 hits + 2 new fit, and nothing is evicted.
    const std::vector<int32_t> fits(longer.begin(), longer.begin() + 16);
    ASSERT_TRUE(kv.allocate(3, fits, 8, 8));
    EXPECT_EQ(kv.stats().num_evicted_blocks, 0);
    EXPECT_EQ(kv.stats().num_blocks_in_use, 4);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, FreeReturnsEverything) {
    KvBlockManager kv = make_manager(16, 4);
    const std::vector<int32_t> shared = iota_tokens(8, 0);
    std::vector<Sequence> sequences = {{1, concat(shared, {1, 2, 3}), 0},
                                       {2, concat(shared, {4, 5}), 0},
                                       {3, iota_tokens(13, 300), 0}};
    for (Sequence& sequence : sequences) ASSERT_TRUE(admit(kv, sequence));
    ASSERT_TRUE(decode_step(kv, sequences[0], 9));
    EXPECT_GT(kv.stats().usage(), 0.0);
    for (const Sequence& sequence : sequences) {
        kv.free(sequence.id);
        EXPECT_FALSE(kv.holds(sequence.id));
        EXPECT_EQ(kv.check_invariants(), "");
    }
    kv.free(2);   // twice: ignored
    kv.free(77);  // never held: ignored
    const KvCacheStats stats = kv.stats();
    EXPECT_EQ(stats.usage(), 0.0);
    EXPECT_EQ(stats.num_blocks_in_use, 0);
    EXPECT_EQ(stats.num_blocks_free + stats.num_blocks_cached, 16);
    EXPECT_EQ(kv.num_available_blocks(), 16);
    EXPECT_EQ(kv.num_requests(), 0);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, RepeatedLongPromptHitsEveryFullBlockButTheLastToken) {
    KvBlockManager kv = make_manager(128, 32);
    std::mt19937_64 rng(1);
    const std::vector<int32_t> prompt = random_tokens(rng, 1000, 200000);
    Sequence first{1, prompt, 0};
    EXPECT_EQ(kv.find_cached_prefix(prompt), 0);
    ASSERT_TRUE(admit(kv, first));
    const std::vector<int32_t> first_table = table(kv, 1);
    EXPECT_EQ(kv.stats().prefix_cache_query_tokens, 1000);
    EXPECT_EQ(kv.stats().prefix_cache_hit_tokens, 0);

    // While the first still runs, and after it is freed: 31 blocks (992 tokens) hit.
    Sequence second{2, prompt, 0};
    EXPECT_EQ(kv.find_cached_prefix(prompt), 992);
    ASSERT_TRUE(admit(kv, second));
    kv.free(1);
    Sequence third{3, prompt, 0};
    ASSERT_TRUE(admit(kv, third));
    for (uint64_t id : {2, 3}) {
        const std::vector<int32_t> shared = table(kv, id);
        ASSERT_EQ(shared.size(), 32u);
        EXPECT_TRUE(std::equal(first_table.begin(), first_table.begin() + 31, shared.begin()));
        EXPECT_NE(shared[31], first_table[31]);  // the partial block is private
    }
    const KvCacheStats stats = kv.stats();
    EXPECT_EQ(stats.prefix_cache_query_tokens, 3000);
    EXPECT_EQ(stats.prefix_cache_hit_tokens, 2 * 992);
    EXPECT_EQ(stats.num_blocks_in_use, 31 + 2);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, MultiTurnChatHitsTurnOnesFullBlocks) {
    constexpr int64_t kBlock = 16;
    KvBlockManager kv = make_manager(64, kBlock);
    std::mt19937_64 rng(2);
    // Turn 1: system + tools + user, ending in "]~b]ai\n<think>\n"; 37 tokens generated.
    const std::vector<int32_t> prompt_1 = random_tokens(rng, 100, 200000);
    Sequence turn_1{1, prompt_1, 0};
    ASSERT_TRUE(admit(kv, turn_1));
    const std::vector<int32_t> generated = random_tokens(rng, 37, 200000);
    for (int32_t token : generated) ASSERT_TRUE(decode_step(kv, turn_1, token));
    turn_1.tokens.push_back(2);  // the last sample (end of turn) is never computed
    const int64_t computed_1 = turn_1.num_computed;
    ASSERT_EQ(computed_1, 137);
    const std::vector<int32_t> table_1 = table(kv, 1);
    kv.free(1);

    // Turn 2 (inside one tool loop) extends turn 1: every full block of turn 1 hits.
    const std::vector<int32_t> prompt_2 = concat(turn_1.tokens, random_tokens(rng, 20, 200000));
    const int64_t full_blocks_1 = computed_1 / kBlock;
    EXPECT_EQ(kv.find_cached_prefix(prompt_2), full_blocks_1 * kBlock);
    Sequence turn_2{2, prompt_2, 0};
    ASSERT_TRUE(admit(kv, turn_2));
    const std::vector<int32_t> table_2 = table(kv, 2);
    EXPECT_TRUE(std::equal(table_1.begin(), table_1.begin() + full_blocks_1, table_2.begin()));
    EXPECT_EQ(kv.stats().prefix_cache_hit_tokens, full_blocks_1 * kBlock);
    kv.free(2);

    // A new user message: the template drops turn 1's reasoning, so the prompt diverges
    // right after turn 1's prompt ("]~b]ai\n"); only blocks before that point hit.
    const std::vector<int32_t> prompt_3 = concat(prompt_1, random_tokens(rng, 60, 200000));
    EXPECT_EQ(kv.find_cached_prefix(prompt_3), 100 / kBlock * kBlock);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, EqualBlockAtAnotherPositionOrAfterAnotherPrefixDoesNotHit) {
    KvBlockManager kv = make_manager(16, 4);
    const std::vector<int32_t> x = {1, 2, 3, 4}, y = {5, 6, 7, 8}, z = {9, 9, 9, 9};
    Sequence a{1, concat(concat(x, y), {0}), 0};
    ASSERT_TRUE(admit(kv, a));
    kv.free(1);
    EXPECT_EQ(kv.find_cached_prefix(concat(concat(x, y), {0})), 8);
    EXPECT_EQ(kv.find_cached_prefix(concat(concat(x, z), {0})), 4);
    EXPECT_EQ(kv.find_cached_prefix(concat(concat(y, x), {0})), 0);  // y at position 0
    EXPECT_EQ(kv.find_cached_prefix(concat(concat(z, y), {0})), 0);  // y after another parent
    EXPECT_EQ(kv.find_cached_prefix(concat(y, {0})), 0);
    EXPECT_NE(hash_block_tokens(kv.root_hash(), y),
              hash_block_tokens(hash_block_tokens(kv.root_hash(), x), y));
}

TEST(KvBlockManager, SharedBlocksAreRefCountedAndOutliveOneHolder) {
    KvBlockManager kv = make_manager(10, 4);
    const std::vector<int32_t> prompt_a = iota_tokens(13, 0);  // 3 full blocks + 1 token
    Sequence a{1, prompt_a, 0};
    ASSERT_TRUE(admit(kv, a));
    Sequence b{2, concat({prompt_a.begin(), prompt_a.begin() + 12}, iota_tokens(5, 70)), 0};
    ASSERT_EQ(kv.find_cached_prefix(b.tokens), 12);
    ASSERT_TRUE(admit(kv, b));
    const std::vector<int32_t> table_a = table(kv, 1), table_b = table(kv, 2);
    ASSERT_EQ(table_b.size(), 5u);
    EXPECT_TRUE(std::equal(table_a.begin(), table_a.begin() + 3, table_b.begin()));
    EXPECT_EQ(kv.stats().num_blocks_in_use, 4 + 2);
    EXPECT_EQ(kv.check_invariants(), "");  // includes: ref count = tables holding the block

    kv.free(1);
    EXPECT_EQ(table(kv, 2), table_b);
    EXPECT_EQ(kv.stats().num_blocks_in_use, 5);
    EXPECT_EQ(kv.stats().num_blocks_cached, 0);  // the shared blocks are still held
    EXPECT_EQ(kv.check_invariants(), "");

    // Another request takes every available block, none of b's.
    Sequence c{3, iota_tokens(20, 900), 0};
    ASSERT_TRUE(admit(kv, c));
    for (int32_t id : table(kv, 3)) {
        EXPECT_EQ(std::count(table_b.begin(), table_b.end(), id), 0);
    }
    EXPECT_EQ(kv.num_available_blocks(), 0);
    EXPECT_EQ(kv.stats().num_evicted_blocks, 0);
    Sequence d{4, iota_tokens(2, 0), 0};
    EXPECT_FALSE(admit(kv, d));  // the manager never takes a held block
    kv.free(2);
    EXPECT_EQ(kv.stats().num_blocks_cached, 4);  // b's 4 full blocks; its partial one is free
    EXPECT_EQ(kv.stats().num_blocks_free, 1);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, DuplicateContentComputedTwiceStaysUnkeyed) {
    KvBlockManager kv = make_manager(8, 4);
    const std::vector<int32_t> prompt = iota_tokens(12, 0);
    ASSERT_TRUE(kv.allocate(1, prompt, 0, 12));
    ASSERT_TRUE(kv.allocate(2, prompt, 0, 12));  // the caller chose not to reuse the prefix
    EXPECT_EQ(kv.check_invariants(), "");
    kv.free(1);
    kv.free(2);
    EXPECT_EQ(kv.stats().num_blocks_cached, 3);
    EXPECT_EQ(kv.stats().num_blocks_free, 5);
    EXPECT_EQ(kv.find_cached_prefix(concat(prompt, {1})), 12);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, EvictsLeastRecentlyUsedTailFirstAndOnlyWhenNoBlockIsFree) {
    KvBlockManager kv = make_manager(6, 4);
    const std::vector<int32_t> pa = iota_tokens(8, 0), pb = iota_tokens(8, 100),
                               pc = iota_tokens(8, 200);
    auto hit = [&](const std::vector<int32_t>& prompt) {
        return kv.find_cached_prefix(concat(prompt, {7}));
    };
    std::vector<std::vector<int32_t>> tables;
    uint64_t id = 1;
    for (const auto& prompt : {pa, pb, pc}) {
        ASSERT_TRUE(kv.allocate(id, prompt, 0, 8));
        tables.push_back(table(kv, id));
        kv.free(id++);
    }
    // Free list empty; cached, least recent first: a1 a0 b1 b0 c1 c0.
    ASSERT_EQ(kv.stats().num_blocks_free, 0);
    ASSERT_EQ(kv.stats().num_blocks_cached, 6);
    EXPECT_EQ(kv.stats().num_evicted_blocks, 0);

    ASSERT_TRUE(kv.allocate(4, iota_tokens(8, 300), 0, 8));
    EXPECT_EQ(table(kv, 4), (std::vector<int32_t>{tables[0][1], tables[0][0]}));
    EXPECT_EQ(kv.stats().num_evicted_blocks, 2);
    EXPECT_EQ(hit(pa), 0);
    EXPECT_EQ(hit(pb), 8);
    EXPECT_EQ(hit(pc), 8);
    kv.free(4);  // cached: b1 b0 c1 c0 d1 d0

    // Reusing b takes its blocks out of the LRU; its third block evicts c's tail block first.
    ASSERT_TRUE(kv.allocate(5, concat(pb, {7}), 8, 1));
    EXPECT_EQ(table(kv, 5)[2], tables[2][1]);
    EXPECT_EQ(kv.stats().num_evicted_blocks, 3);
    EXPECT_EQ(hit(pc), 4);
    kv.free(5);  // free: its partial block; cached: c0 d1 d0 b1 b0

    ASSERT_TRUE(kv.allocate(6, iota_tokens(8, 400), 0, 8));  // the free block, then c0
    EXPECT_EQ(kv.stats().num_evicted_blocks, 4);
    EXPECT_EQ(table(kv, 6)[1], tables[2][0]);
    EXPECT_EQ(hit(pc), 0);
    EXPECT_EQ(hit(pb), 8);
    EXPECT_EQ(kv.find_cached_prefix(concat(iota_tokens(8, 300), {7})), 8);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, LastPromptTokenIsNeverServedFromCache) {
    KvBlockManager kv = make_manager(8, 4);
    const std::vector<int32_t> prompt = iota_tokens(8, 0);
    ASSERT_TRUE(kv.allocate(1, prompt, 0, 8));
    kv.free(1);
    ASSERT_EQ(kv.stats().num_blocks_cached, 2);   // both blocks cached...
    EXPECT_EQ(kv.find_cached_prefix(prompt), 4);  // ...but the last token must be computed
    EXPECT_EQ(kv.find_cached_prefix(concat(prompt, {1})), 8);
    EXPECT_EQ(kv.find_cached_prefix({prompt.begin(), prompt.begin() + 5}), 4);
    EXPECT_EQ(kv.find_cached_prefix({prompt.begin(), prompt.begin() + 4}), 0);
    EXPECT_EQ(kv.find_cached_prefix({prompt.begin(), prompt.begin() + 1}), 0);
    EXPECT_EQ(kv.find_cached_prefix({}), 0);
}

TEST(KvBlockManagerDeathTest, ReusingMoreThanTheCachedPrefixIsABug) {
    KvBlockManager kv = make_manager(8, 4);
    const std::vector<int32_t> prompt = iota_tokens(8, 0);
    ASSERT_TRUE(kv.allocate(1, prompt, 0, 8));
    kv.free(1);
    EXPECT_DEATH(kv.allocate(2, prompt, 8, 0), "find_cached_prefix");  // the last token
    EXPECT_DEATH(kv.allocate(2, concat(prompt, {1}), 6, 3), "find_cached_prefix");  // unaligned
    EXPECT_DEATH(kv.allocate(2, concat(iota_tokens(4, 50), prompt), 8, 5), "not cached");
}

TEST(KvBlockManager, PrefixCachingOff) {
    KvBlockManager kv = make_manager(8, 4, /*caching=*/false);
    const std::vector<int32_t> prompt = iota_tokens(9, 0);
    for (uint64_t id : {1, 2}) {
        Sequence sequence{id, prompt, 0};
        EXPECT_EQ(kv.find_cached_prefix(prompt), 0);
        ASSERT_TRUE(admit(kv, sequence));
        kv.free(id);
    }
    EXPECT_EQ(kv.stats().num_blocks_cached, 0);
    EXPECT_EQ(kv.stats().num_blocks_free, 8);
    EXPECT_EQ(kv.stats().prefix_cache_hit_tokens, 0);
    EXPECT_EQ(kv.check_invariants(), "");
}

TEST(KvBlockManager, InvalidOptionsAreErrors) {
    KvBlockManagerOptions options;
    options.num_blocks = 0;
    EXPECT_THROW(KvBlockManager{options}, Error);
    options.num_blocks = 4;
    options.block_size = 0;
    EXPECT_THROW(KvBlockManager{options}, Error);
}

TEST(BlockHash, KnownAnswersFromHashlib) {
    // python3 -c "import hashlib,struct; print(hashlib.sha256(bytes(32)).hexdigest());
    //   print(hashlib.sha256(bytes(32) + struct.pack('<4i', 1, 2, 3, 4)).hexdigest())"
    EXPECT_EQ(hex(hash_block_tokens(BlockHash{}, {})),
              "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    const std::vector<int32_t> tokens = {1, 2, 3, 4};
    EXPECT_EQ(hex(hash_block_tokens(BlockHash{}, tokens)),
              "d8faa8ec8c0500567ca87b56e4bb666d69cb512e638103891defea24e88cbc92");
}

TEST(BlockHash, ChainProperties) {
    const BlockHash root = random_root_hash();
    EXPECT_NE(root, random_root_hash());
    EXPECT_NE(root, BlockHash{});
    const std::vector<int32_t> tokens = iota_tokens(10, 7);
    const std::vector<BlockHash> chain = hash_full_blocks(root, tokens, 4);
    ASSERT_EQ(chain.size(), 2u);  // the partial tail block has no key
    const std::span<const int32_t> all(tokens);
    EXPECT_EQ(chain[0], hash_block_tokens(root, all.subspan(0, 4)));
    EXPECT_EQ(chain[1], hash_block_tokens(chain[0], all.subspan(4, 4)));
    // Deterministic, and a prefix's chain is a prefix of the extension's.
    EXPECT_EQ(hash_full_blocks(root, tokens, 4), chain);
    const std::vector<BlockHash> extended = hash_full_blocks(root, concat(tokens, {1, 2}), 4);
    ASSERT_EQ(extended.size(), 3u);
    EXPECT_TRUE(std::equal(chain.begin(), chain.end(), extended.begin()));
    // Sensitive to the root, the parent, token order and each token.
    EXPECT_NE(hash_full_blocks(BlockHash{}, tokens, 4)[0], chain[0]);
    EXPECT_NE(hash_block_tokens(chain[0], all.subspan(0, 4)), chain[0]);
    const std::vector<int32_t> swapped = {8, 7, 9, 10};
    EXPECT_NE(hash_block_tokens(root, swapped), chain[0]);
    const std::vector<int32_t> one_off = {7, 8, 9, 11};
    EXPECT_NE(hash_block_tokens(root, one_off), chain[0]);
    EXPECT_EQ(BlockHashHasher{}(chain[0]),
              BlockHashHasher{}(hash_block_tokens(root, all.subspan(0, 4))));
}

TEST(BlockHash, SameKeysFromManyThreads) {
    const std::vector<int32_t> tokens = iota_tokens(4096, 3);
    const std::vector<BlockHash> expected = hash_full_blocks(BlockHash{}, tokens, 32);
    std::vector<std::vector<BlockHash>> results(4);
    std::vector<std::thread> threads;
    for (auto& result : results) {
        threads.emplace_back([&] { result = hash_full_blocks(BlockHash{}, tokens, 32); });
    }
    for (std::thread& thread : threads) thread.join();
    for (const auto& result : results) EXPECT_EQ(result, expected);
}

// ---- Randomized run -------------------------------------------------------------------------

// What the forward would write at a position: a fingerprint of every token up to it, so a slot
// read by a request matches only if it holds the KV of that request's own prefix.
std::vector<uint64_t> prefix_fingerprints(const std::vector<int32_t>& tokens) {
    std::vector<uint64_t> fingerprints(tokens.size());
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < tokens.size(); ++i) {
        state ^= static_cast<uint32_t>(tokens[i]) + 0x632be59bd9b4e019ull;
        state = (state ^ (state >> 30)) * 0xbf58476d1ce4e5b9ull;
        state = (state ^ (state >> 27)) * 0x94d049bb133111ebull;
        state ^= state >> 31;
        fingerprints[i] = state;
    }
    return fingerprints;
}

struct StressConfig {
    uint64_t seed;
    int64_t num_blocks;
    int64_t block_size;
    int32_t vocab;  // small, so equal blocks at different positions are common
};

// A scheduler in miniature: admits with prefix hits and chunked prefill, decodes with random
// drafts and acceptance, preempts when the pool is full, finishes requests whose tokens
// later come back as the next turn.
class StressRun {
public:
    explicit StressRun(const StressConfig& config)
        : config_(config),
          kv_(make_manager(config.num_blocks, config.block_size)),
          slots_(config.num_blocks * config.block_size, 0),
          rng_(config.seed),
          max_tokens_(config.num_blocks * config.block_size / 3) {
        for (int i = 0; i < 6; ++i) prefixes_.push_back(random(rng_() % (max_tokens_ / 2)));
    }

    void run(int num_ops) {
        for (int op = 0; op < num_ops; ++op) {
            const uint64_t choice = rng_() % 100;
            if (choice < 25 || running_.empty()) {
                admit_new();
            } else if (choice < 35 && !waiting_.empty()) {
                resume();
            } else if (choice < 88) {
                step(running_[rng_() % running_.size()]);
            } else {
                finish(rng_() % running_.size());
            }
            ASSERT_FALSE(::testing::Test::HasFailure()) << "op " << op;
            ASSERT_EQ(kv_.check_invariants(), "") << "op " << op;
            ASSERT_EQ(kv_.num_requests(), static_cast<int64_t>(running_.size()));
        }
        while (!running_.empty()) finish(0);
        waiting_.clear();
        const KvCacheStats stats = kv_.stats();
        EXPECT_EQ(stats.usage(), 0.0);
        EXPECT_EQ(stats.num_blocks_in_use, 0);
        EXPECT_EQ(kv_.num_available_blocks(), config_.num_blocks);
        EXPECT_EQ(kv_.check_invariants(), "");
        // The run reached every path it is meant to check.
        EXPECT_GT(stats.prefix_cache_hit_tokens, 0);
        EXPECT_GT(stats.num_evicted_blocks, 0);
        EXPECT_GT(num_admission_failures_, 0);
        EXPECT_GT(num_preemptions_, 0);
        EXPECT_GT(num_drafts_accepted_, 0);
    }

private:
    struct Request {
        uint64_t id;
        std::vector<int32_t> tokens;
        int64_t num_computed = 0;
    };

    std::vector<int32_t> random(int64_t n) { return random_tokens(rng_, n, config_.vocab); }
    int64_t chunk() { return 1 + static_cast<int64_t>(rng_() % (3 * config_.block_size + 2)); }

    uint64_t& slot(const Request& request, int64_t position) {
        const auto block_ids = kv_.block_table(request.id);
        const int64_t block = position / config_.block_size;
        if (block >= static_cast<int64_t>(block_ids.size())) {
            ADD_FAILURE() << "request " << request.id << ": position " << position
                          << " is past its " << block_ids.size() << " blocks";
            return dummy_slot_;
        }
        return slots_[block_ids[block] * config_.block_size + position % config_.block_size];
    }

    // Every position the request has KV for holds the KV of its own prefix.
    void expect_reads_own_kv(const Request& request) {
        const std::vector<uint64_t> expected = prefix_fingerprints(request.tokens);
        for (int64_t p = 0; p < request.num_computed; ++p) {
            ASSERT_EQ(slot(request, p), expected[p])
                << "request " << request.id << " position " << p;
        }
    }

    void compute(const Request& request, const std::vector<int32_t>& sequence, int64_t n) {
        const std::vector<uint64_t> fingerprints = prefix_fingerprints(sequence);
        for (int64_t p = request.num_computed; p < request.num_computed + n; ++p) {
            slot(request, p) = fingerprints[p];
        }
    }

    // A failed allocation changed nothing.
    void expect_unchanged(const KvCacheStats& before, uint64_t id,
                          const std::vector<int32_t>& table_before) {
        expect_same_stats(kv_.stats(), before);
        EXPECT_EQ(table(kv_, id), table_before);
    }

    // Looks up the cached prefix, allocates the first chunk, checks the served KV.
    bool try_admit(Request& request) {
        const int64_t size = static_cast<int64_t>(request.tokens.size());
        const int64_t hit = kv_.find_cached_prefix(request.tokens);
        EXPECT_EQ(hit % config_.block_size, 0);
        EXPECT_LT(hit, size);
        const int64_t n = std::min(size - hit, chunk());
        const KvCacheStats before = kv_.stats();
        if (!kv_.allocate(request.id, request.tokens, hit, n)) {
            expect_unchanged(before, request.id, {});
            EXPECT_FALSE(kv_.holds(request.id));
            ++num_admission_failures_;
            return false;
        }
        EXPECT_EQ(kv_.stats().prefix_cache_hit_tokens - before.prefix_cache_hit_tokens, hit);
        request.num_computed = hit;
        expect_reads_own_kv(request);
        compute(request, request.tokens, n);
        request.num_computed += n;
        running_.push_back(std::move(request));
        return true;
    }

    void admit_new() {
        Request request{next_id_++, {}, 0};
        const uint64_t kind = rng_() % 100;
        if (kind < 25 && !finished_.empty()) {  // the next turn: the whole history, then more
            request.tokens = concat(finished_[rng_() % finished_.size()], random(1 + rng_() % 12));
        } else if (kind < 40 && !finished_.empty()) {  // history re-rendered differently
            std::vector<int32_t> history = finished_[rng_() % finished_.size()];
            history.resize(rng_() % (history.size() + 1));
            request.tokens = concat(history, random(1 + rng_() % 20));
        } else {
            request.tokens = concat(prefixes_[rng_() % prefixes_.size()], random(1 + rng_() % 30));
        }
        if (static_cast<int64_t>(request.tokens.size()) > max_tokens_) {
            request.tokens.resize(max_tokens_);
        }
        try_admit(request);
    }

    void resume() {
        Request request = std::move(waiting_.front());
        waiting_.erase(waiting_.begin());
        if (!try_admit(request)) waiting_.push_back(std::move(request));
    }

    void step(Request& request) {
        if (request.num_computed == static_cast<int64_t>(request.tokens.size())) {
            request.tokens.push_back(random(1)[0]);  // sampled by the previous step
        }
        expect_reads_own_kv(request);
        const int64_t remaining =
            static_cast<int64_t>(request.tokens.size()) - request.num_computed;
        std::vector<int32_t> drafts;
        if (remaining == 1) drafts = random(rng_() % 4);
        const int64_t n =
            remaining > 1 ? std::min(remaining, chunk()) : 1 + static_cast<int64_t>(drafts.size());
        const KvCacheStats before = kv_.stats();
        const std::vector<int32_t> table_before = table(kv_, request.id);
        if (!kv_.allocate(request.id, request.tokens, request.num_computed, n)) {
            expect_unchanged(before, request.id, table_before);
            preempt(rng_() % running_.size());  // maybe this request itself
            return;
        }
        compute(request, concat(request.tokens, drafts), n);
        if (drafts.empty()) {
            request.num_computed += n;
        } else {
            const size_t accepted = rng_() % (drafts.size() + 1);
            num_drafts_accepted_ += static_cast<int64_t>(accepted);
            request.tokens.insert(request.tokens.end(), drafts.begin(), drafts.begin() + accepted);
            request.num_computed += 1 + static_cast<int64_t>(accepted);
        }
        if (static_cast<int64_t>(request.tokens.size()) >= max_tokens_) {
            finish(&request - running_.data());
        }
    }

    void preempt(size_t index) {
        Request victim = std::move(running_[index]);
        running_.erase(running_.begin() + index);
        kv_.free(victim.id);
        victim.num_computed = 0;
        waiting_.push_back(std::move(victim));
        ++num_preemptions_;
    }

    void finish(size_t index) {
        kv_.free(running_[index].id);
        if (finished_.size() < 16) {
            finished_.push_back(running_[index].tokens);
        } else {
            finished_[rng_() % finished_.size()] = running_[index].tokens;
        }
        running_.erase(running_.begin() + index);
    }

    StressConfig config_;
    KvBlockManager kv_;
    std::vector<uint64_t> slots_;  // [num_blocks * block_size] fingerprints; 0 = never written
    uint64_t dummy_slot_ = 0;
    std::mt19937_64 rng_;
    int64_t max_tokens_;
    std::vector<std::vector<int32_t>> prefixes_, finished_;
    std::vector<Request> running_, waiting_;
    uint64_t next_id_ = 1;
    int64_t num_admission_failures_ = 0;
    int64_t num_preemptions_ = 0;
    int64_t num_drafts_accepted_ = 0;
};

TEST(KvBlockManager, RandomizedRunKeepsInvariantsAndServesOnlyOwnPrefixes) {
    for (const StressConfig& config : {StressConfig{1, 48, 4, 3}, StressConfig{2, 64, 1, 4},
                                       StressConfig{3, 40, 8, 2}, StressConfig{4, 96, 2, 5}}) {
        SCOPED_TRACE(::testing::Message()
                     << "seed " << config.seed << ", block size " << config.block_size);
        StressRun run(config);
        run.run(5000);
        if (::testing::Test::HasFatalFailure()) return;
    }
}

}  // namespace
}  // namespace fourbit
