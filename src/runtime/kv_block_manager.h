// The paged KV cache's bookkeeping: which request holds which fixed-size blocks of the pool,
// and the automatic prefix cache over full blocks (vLLM v1's KVCacheManager + BlockPool, in
// one class). Pure logic: it hands out block ids; it owns no device memory and no tensors.
//
// Policy: admission control and preemption belong to the caller (the scheduler). allocate()
// either grows a request's table or returns nullopt with nothing changed; the caller then
// queues the request or preempts another one and retries. The manager never takes a block
// from a request that holds it: the only blocks it reuses are free ones and, when the free
// list is empty, cached blocks that no request holds, least recently used first.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace fourbit {

// The key of a full block: SHA-256 over (the parent block's key, the block's token ids as
// little-endian int32), so equal tokens at different positions or after different prefixes
// get different keys. SHA-256 rather than a fast 128-bit mix because a collision would serve
// another prompt's KV, and prompts come from clients: a cryptographic hash keeps even crafted
// collisions out of reach. It costs ~260 ns per 32-token block with OpenSSL's SHA-NI code
// (~8 ns per token, ~1 ms for a 100K-token prompt), small beside prefilling that prompt.
struct BlockHash {
    std::array<uint8_t, 32> bytes{};
    friend bool operator==(const BlockHash&, const BlockHash&) = default;
};

struct BlockHashHasher {
    size_t operator()(const BlockHash& hash) const;  // the first 8 bytes: already uniform
};

// SHA-256(parent.bytes || block_token_ids as little-endian int32). Thread-safe.
BlockHash hash_block_tokens(const BlockHash& parent, std::span<const int32_t> block_token_ids);

// The keys of every full block of token_ids (a partial tail block has none), chained from
// `root`: key[i] = hash_block_tokens(key[i - 1] or root, block i). Thread-safe.
std::vector<BlockHash> hash_full_blocks(const BlockHash& root, std::span<const int32_t> token_ids,
                                        int64_t block_size);

// 32 bytes from std::random_device: keys unpredictable to clients and private to a process.
BlockHash random_root_hash();

struct KvBlockManagerOptions {
    int64_t num_blocks = 0;   // the pool; every block id in [0, num_blocks) is usable
    int64_t block_size = 32;  // tokens per block
    bool enable_prefix_caching = true;
    // The parent key of every first block. Unset: random_root_hash(). Set it only to share
    // keys between processes or to make tests reproducible.
    std::optional<BlockHash> root_hash;
};

// What allocate() grew a table to.
struct KvAllocation {
    // The request's whole table after the step: block i holds positions
    // [i * block_size, (i + 1) * block_size). Valid until the next allocate() or free() of the
    // same request.
    std::span<const int32_t> block_ids;
    int64_t num_new_blocks = 0;  // how many at the end of block_ids this call added
};

// For /metrics (engine.md §6).
struct KvCacheStats {
    int64_t num_blocks = 0;
    int64_t num_blocks_in_use = 0;          // held by at least one request
    int64_t num_blocks_cached = 0;          // held by none but reusable by key (evictable)
    int64_t num_blocks_free = 0;            // held by none, no key
    int64_t prefix_cache_query_tokens = 0;  // tokens of requests admitted (vLLM's "queries")
    int64_t prefix_cache_hit_tokens = 0;    // of those, tokens served from the cache
    int64_t num_evicted_blocks = 0;         // cached blocks whose key was dropped for reuse
    // kv_cache_usage_perc: 1 = full; cached blocks that no request holds count as free.
    double usage() const {
        return num_blocks == 0 ? 0.0 : static_cast<double>(num_blocks_in_use) / num_blocks;
    }
};

class KvBlockManager {
public:
    explicit KvBlockManager(const KvBlockManagerOptions& options);

    // How many leading tokens of token_ids (a new or resumed request's prompt, outputs
    // included after a preemption) are held by cached blocks: a multiple of block_size, and
    // at most token_ids.size() - 1, because the last token must be computed to produce
    // logits. Stops at the first block not cached. Changes nothing and counts nothing.
    int64_t find_cached_prefix(std::span<const int32_t> token_ids) const;

    // Grows request_id's table to cover num_computed_tokens + num_new_tokens positions, the
    // tokens it will hold after this step; nullopt, with nothing changed, if the pool cannot
    // supply the new blocks.
    //   token_ids: the request's known tokens (prompt, then accepted outputs; never drafts).
    //     Blocks whose every position is below min(token_ids.size(), the new total) become
    //     findable by key at once, so a request admitted later in the same step can share them.
    //   num_computed_tokens: positions whose KV the request holds before this step. For a
    //     request the manager does not hold (new, or resumed after free()) it is the cached
    //     prefix to reuse: a multiple of block_size, at most find_cached_prefix(token_ids)
    //     (normally exactly that; 0 recomputes everything). Those blocks are shared, and the
    //     admission counts token_ids.size() queried and num_computed_tokens hit. For a running
    //     request it may be below what the table covers (rejected drafts): the table never
    //     shrinks, and existing blocks are reused first.
    //   num_new_tokens: positions computed this step (prefill chunk, or 1 + drafts).
    // NOTE: a block is findable from the call that allocates it, before its KV exists; that
    // is safe because the step writes all its KV before any attention reads it. So free() a
    // request only after the step that allocated its blocks has run: freeing it before (a
    // preemption victim already scheduled in this step) would leave keyed blocks with no KV.
    std::optional<KvAllocation> allocate(uint64_t request_id, std::span<const int32_t> token_ids,
                                         int64_t num_computed_tokens, int64_t num_new_tokens);

    // Gives back every block of request_id (finished, aborted or preempted). A block no other
    // request holds becomes cached, most recently used, if it has a key, and free otherwise.
    // The table's later blocks are queued for eviction before its earlier ones, since a block
    // is only found through all of its predecessors. Unknown ids are ignored.
    void free(uint64_t request_id);

    // Forgets the key of every cached block that no request holds (they become free). For when
    // a step failed after allocate(): blocks it keyed may hold no KV; free() the step's
    // requests first, then call this. Blocks that requests hold keep their keys.
    void reset_prefix_cache();

    std::span<const int32_t> block_table(uint64_t request_id) const;  // empty if unknown
    bool holds(uint64_t request_id) const { return requests_.contains(request_id); }
    int64_t num_requests() const { return static_cast<int64_t>(requests_.size()); }

    // Blocks allocate() could hand out now: free ones plus cached ones no request holds.
    int64_t num_available_blocks() const { return free_list_.size + cached_list_.size; }
    int64_t block_size() const { return block_size_; }
    int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
    const BlockHash& root_hash() const { return root_hash_; }
    KvCacheStats stats() const;

    // Every invariant, in O(num_blocks + table entries); for tests and debug builds. Returns
    // the first violation found, or an empty string. Each block is in exactly one of
    // {free, cached (no holder, keyed), in use}; a block's ref count equals the number of
    // tables holding it; the key map and the blocks' keys agree; each list walks the same
    // both ways; a request's blocks with keys carry the keys of its chain.
    std::string check_invariants() const;

private:
    static constexpr int32_t kNone = -1;
    enum class Place : uint8_t { kFree, kCached, kInUse };

    struct Block {
        int32_t ref_count = 0;  // tables holding this block
        int32_t prev = kNone;   // neighbours in the list named by `place` (free or cached)
        int32_t next = kNone;
        Place place = Place::kFree;
        bool has_hash = false;  // NOTE: true exactly when hash_to_block_[hash] is this block
        BlockHash hash;
    };

    // An intrusive doubly linked list over blocks_: pop at the head, push at the tail.
    struct BlockList {
        int32_t head = kNone;
        int32_t tail = kNone;
        int64_t size = 0;
    };

    struct RequestBlocks {
        std::vector<int32_t> block_ids;
        // Keys of the request's first full blocks, in order; extended as blocks fill. A block
        // whose content another block already caches stays unkeyed in the pool, but its key
        // is still here so the chain goes on.
        std::vector<BlockHash> block_hashes;
    };

    BlockList& list_of(Place place) { return place == Place::kFree ? free_list_ : cached_list_; }
    void push_back(Place place, int32_t block_id);
    void unlink(int32_t block_id);
    int32_t take_block();  // a free block, else evicts the least recently used cached one
    void cache_full_blocks(RequestBlocks& request, std::span<const int32_t> token_ids,
                           int64_t num_tokens);
    std::string check_list(Place place) const;

    int64_t block_size_;
    bool enable_prefix_caching_;
    BlockHash root_hash_;
    std::vector<Block> blocks_;
    BlockList free_list_;    // no holder, no key
    BlockList cached_list_;  // no holder, keyed; the head is the least recently used
    std::unordered_map<BlockHash, int32_t, BlockHashHasher> hash_to_block_;
    std::unordered_map<uint64_t, RequestBlocks> requests_;
    int64_t prefix_cache_query_tokens_ = 0;
    int64_t prefix_cache_hit_tokens_ = 0;
    int64_t num_evicted_blocks_ = 0;
};

}  // namespace fourbit
