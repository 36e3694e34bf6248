// The block pool and prefix cache behind KvBlockManager: two intrusive lists (free, cached in
// LRU order), ref counts, and a map from block keys to the block holding each.
#include "runtime/kv_block_manager.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <random>

#include "util/error.h"

namespace fourbit {
namespace {

// Token ids are hashed as their in-memory bytes, which must be the little-endian encoding the
// key is defined over (so keys agree across hosts given the same root).
static_assert(std::endian::native == std::endian::little);

// Fetched once: OpenSSL 3 looks the algorithm up on every digest otherwise (the one-shot
// SHA256() measured 630 ns per block against 260 ns with a fetched one). Never freed, so no
// digest can outlive it at exit.
const EVP_MD* sha256() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    FOURBIT_ASSERT(md != nullptr, "OpenSSL has no SHA256");
    return md;
}

// One digest context per thread, so hashing needs no lock (HTTP threads may hash prompts).
struct DigestContext {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    ~DigestContext() { EVP_MD_CTX_free(context); }
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

size_t BlockHashHasher::operator()(const BlockHash& hash) const {
    size_t value;
    std::memcpy(&value, hash.bytes.data(), sizeof(value));
    return value;
}

BlockHash hash_block_tokens(const BlockHash& parent, std::span<const int32_t> block_token_ids) {
    thread_local DigestContext digest;
    BlockHash out;
    unsigned int length = 0;
    const bool ok =
        digest.context != nullptr && EVP_DigestInit_ex(digest.context, sha256(), nullptr) == 1 &&
        EVP_DigestUpdate(digest.context, parent.bytes.data(), parent.bytes.size()) == 1 &&
        EVP_DigestUpdate(digest.context, block_token_ids.data(), block_token_ids.size_bytes()) ==
            1 &&
        EVP_DigestFinal_ex(digest.context, out.bytes.data(), &length) == 1;
    FOURBIT_ASSERT(ok && length == out.bytes.size(), "SHA-256 failed");
    return out;
}

std::vector<BlockHash> hash_full_blocks(const BlockHash& root, std::span<const int32_t> token_ids,
                                        int64_t block_size) {
    FOURBIT_ASSERT(block_size > 0);
    const int64_t num_full_blocks = static_cast<int64_t>(token_ids.size()) / block_size;
    std::vector<BlockHash> hashes;
    hashes.reserve(num_full_blocks);
    for (int64_t i = 0; i < num_full_blocks; ++i) {
        hashes.push_back(hash_block_tokens(i == 0 ? root : hashes.back(),
                                           token_ids.subspan(i * block_size, block_size)));
    }
    return hashes;
}

BlockHash random_root_hash() {
    std::random_device device;
    BlockHash root;
    for (size_t i = 0; i < root.bytes.size(); i += 4) {
        const uint32_t word = device();
        std::memcpy(root.bytes.data() + i, &word, 4);
    }
    return root;
}

KvBlockManager::KvBlockManager(const KvBlockManagerOptions& options)
    : block_size_(options.block_size),
      enable_prefix_caching_(options.enable_prefix_caching),
      root_hash_(options.root_hash ? *options.root_hash : random_root_hash()) {
    if (options.num_blocks <= 0 || options.num_blocks > std::numeric_limits<int32_t>::max()) {
        fail("KV cache: the pool needs between 1 and 2^31 - 1 blocks, got {}", options.num_blocks);
    }
    if (options.block_size <= 0) {
        fail("KV cache: block_size must be positive, got {}", options.block_size);
    }
    blocks_.resize(options.num_blocks);
    for (int32_t id = 0; id < static_cast<int32_t>(options.num_blocks); ++id) {
        push_back(Place::kFree, id);
    }
}

void KvBlockManager::push_back(Place place, int32_t block_id) {
    BlockList& list = list_of(place);
    Block& block = blocks_[block_id];
    block.place = place;
    block.prev = list.tail;
    block.next = kNone;
    if (list.tail == kNone) {
        list.head = block_id;
    } else {
        blocks_[list.tail].next = block_id;
    }
    list.tail = block_id;
    ++list.size;
}

void KvBlockManager::unlink(int32_t block_id) {
    Block& block = blocks_[block_id];
    FOURBIT_ASSERT(block.place != Place::kInUse, "block {} is in no list", block_id);
    BlockList& list = list_of(block.place);
    if (block.prev == kNone) {
        list.head = block.next;
    } else {
        blocks_[block.prev].next = block.next;
    }
    if (block.next == kNone) {
        list.tail = block.prev;
    } else {
        blocks_[block.next].prev = block.prev;
    }
    --list.size;
    block.prev = block.next = kNone;
    block.place = Place::kInUse;
}

int32_t KvBlockManager::take_block() {
    int32_t block_id = free_list_.head;
    if (block_id == kNone) {
        block_id = cached_list_.head;
        FOURBIT_ASSERT(block_id != kNone, "no block to take; the caller checks availability");
        Block& evicted = blocks_[block_id];
        hash_to_block_.erase(evicted.hash);
        evicted.has_hash = false;
        ++num_evicted_blocks_;
    }
    unlink(block_id);
    blocks_[block_id].ref_count = 1;
    return block_id;
}

int64_t KvBlockManager::find_cached_prefix(std::span<const int32_t> token_ids) const {
    if (!enable_prefix_caching_ || token_ids.empty()) return 0;
    // NOTE: the last token is never served from the cache: its forward produces the logits.
    const int64_t max_blocks = (static_cast<int64_t>(token_ids.size()) - 1) / block_size_;
    BlockHash parent = root_hash_;
    int64_t num_blocks = 0;
    while (num_blocks < max_blocks) {
        parent =
            hash_block_tokens(parent, token_ids.subspan(num_blocks * block_size_, block_size_));
        if (!hash_to_block_.contains(parent)) break;
        ++num_blocks;
    }
    return num_blocks * block_size_;
}

std::optional<KvAllocation> KvBlockManager::allocate(uint64_t request_id,
                                                     std::span<const int32_t> token_ids,
                                                     int64_t num_computed_tokens,
                                                     int64_t num_new_tokens) {
    FOURBIT_ASSERT(num_computed_tokens >= 0 && num_new_tokens >= 0,
                   "request {}: {} computed, {} new tokens", request_id, num_computed_tokens,
                   num_new_tokens);
    const int64_t num_tokens = num_computed_tokens + num_new_tokens;
    const int64_t num_blocks_needed = ceil_div(num_tokens, block_size_);

    auto found = requests_.find(request_id);
    if (found != requests_.end()) {
        RequestBlocks& request = found->second;
        const int64_t num_held = static_cast<int64_t>(request.block_ids.size());
        FOURBIT_ASSERT(num_computed_tokens <= num_held * block_size_,
                       "request {}: {} tokens computed but only {} blocks held", request_id,
                       num_computed_tokens, num_held);
        const int64_t num_new_blocks = std::max<int64_t>(0, num_blocks_needed - num_held);
        if (num_new_blocks > num_available_blocks()) return std::nullopt;
        for (int64_t i = 0; i < num_new_blocks; ++i) request.block_ids.push_back(take_block());
        cache_full_blocks(request, token_ids, num_tokens);
        return KvAllocation{request.block_ids, num_new_blocks};
    }

    // A new (or resumed) request: share the cached prefix the caller chose, then add blocks.
    const int64_t max_cached_tokens =
        token_ids.empty()
            ? 0
            : (static_cast<int64_t>(token_ids.size()) - 1) / block_size_ * block_size_;
    FOURBIT_ASSERT(num_computed_tokens % block_size_ == 0 &&
                       num_computed_tokens <= max_cached_tokens &&
                       (num_computed_tokens == 0 || enable_prefix_caching_),
                   "request {}: a cached prefix of {} tokens (block size {}, {} tokens) is not "
                   "one find_cached_prefix() can return",
                   request_id, num_computed_tokens, block_size_, token_ids.size());
    const int64_t num_hit_blocks = num_computed_tokens / block_size_;
    std::vector<int32_t> block_ids;
    std::vector<BlockHash> block_hashes;
    block_ids.reserve(std::max(num_blocks_needed, num_hit_blocks));
    block_hashes.reserve(num_hit_blocks);
    int64_t num_hits_unheld = 0;  // hit blocks in the cached list: not available for new ones
    for (int64_t i = 0; i < num_hit_blocks; ++i) {
        const BlockHash hash = hash_block_tokens(i == 0 ? root_hash_ : block_hashes.back(),
                                                 token_ids.subspan(i * block_size_, block_size_));
        const auto hit = hash_to_block_.find(hash);
        FOURBIT_ASSERT(hit != hash_to_block_.end(),
                       "request {}: block {} of the {}-token prefix passed as cached is not "
                       "cached; pass at most find_cached_prefix()",
                       request_id, i, num_computed_tokens);
        block_ids.push_back(hit->second);
        block_hashes.push_back(hash);
        if (blocks_[hit->second].ref_count == 0) ++num_hits_unheld;
    }
    const int64_t num_new_blocks = num_blocks_needed - num_hit_blocks;
    if (num_new_blocks > num_available_blocks() - num_hits_unheld) return std::nullopt;

    for (int32_t block_id : block_ids) {
        Block& block = blocks_[block_id];
        if (block.ref_count == 0) unlink(block_id);  // out of the LRU: held again
        ++block.ref_count;
    }
    RequestBlocks& request = requests_[request_id];
    request.block_ids = std::move(block_ids);
    request.block_hashes = std::move(block_hashes);
    for (int64_t i = 0; i < num_new_blocks; ++i) request.block_ids.push_back(take_block());
    cache_full_blocks(request, token_ids, num_tokens);
    prefix_cache_query_tokens_ += static_cast<int64_t>(token_ids.size());
    prefix_cache_hit_tokens_ += num_computed_tokens;
    return KvAllocation{request.block_ids, num_new_blocks};
}

void KvBlockManager::cache_full_blocks(RequestBlocks& request, std::span<const int32_t> token_ids,
                                       int64_t num_tokens) {
    if (!enable_prefix_caching_) return;
    // Only known tokens are keyed: positions past token_ids (drafts) may yet be rejected.
    const int64_t num_full_blocks =
        std::min(num_tokens, static_cast<int64_t>(token_ids.size())) / block_size_;
    for (int64_t i = static_cast<int64_t>(request.block_hashes.size()); i < num_full_blocks; ++i) {
        const BlockHash hash = hash_block_tokens(i == 0 ? root_hash_ : request.block_hashes.back(),
                                                 token_ids.subspan(i * block_size_, block_size_));
        request.block_hashes.push_back(hash);
        const int32_t block_id = request.block_ids[i];
        Block& block = blocks_[block_id];
        FOURBIT_ASSERT(!block.has_hash, "block {} past the request's keyed blocks has a key",
                       block_id);
        // A block with the same key already exists (computed by another request that this
        // one did not share with): keep the first, leave this one unkeyed.
        if (hash_to_block_.try_emplace(hash, block_id).second) {
            block.has_hash = true;
            block.hash = hash;
        }
    }
}

void KvBlockManager::free(uint64_t request_id) {
    const auto found = requests_.find(request_id);
    if (found == requests_.end()) return;
    const std::vector<int32_t>& block_ids = found->second.block_ids;
    // Last block first, so the cached list evicts a table's tail before its head.
    for (auto it = block_ids.rbegin(); it != block_ids.rend(); ++it) {
        Block& block = blocks_[*it];
        FOURBIT_ASSERT(block.ref_count > 0, "block {} of request {} has no holder", *it,
                       request_id);
        if (--block.ref_count == 0) push_back(block.has_hash ? Place::kCached : Place::kFree, *it);
    }
    requests_.erase(found);
}

void KvBlockManager::reset_prefix_cache() {
    while (cached_list_.head != kNone) {
        const int32_t block_id = cached_list_.head;
        Block& block = blocks_[block_id];
        unlink(block_id);
        hash_to_block_.erase(block.hash);
        block.has_hash = false;
        push_back(Place::kFree, block_id);
    }
}

std::span<const int32_t> KvBlockManager::block_table(uint64_t request_id) const {
    const auto found = requests_.find(request_id);
    if (found == requests_.end()) return {};
    return found->second.block_ids;
}

KvCacheStats KvBlockManager::stats() const {
    KvCacheStats stats;
    stats.num_blocks = num_blocks();
    stats.num_blocks_free = free_list_.size;
    stats.num_blocks_cached = cached_list_.size;
    stats.num_blocks_in_use = stats.num_blocks - free_list_.size - cached_list_.size;
    stats.prefix_cache_query_tokens = prefix_cache_query_tokens_;
    stats.prefix_cache_hit_tokens = prefix_cache_hit_tokens_;
    stats.num_evicted_blocks = num_evicted_blocks_;
    return stats;
}

std::string KvBlockManager::check_list(Place place) const {
    const BlockList& list = place == Place::kFree ? free_list_ : cached_list_;
    const char* name = place == Place::kFree ? "free" : "cached";
    int64_t count = 0;
    int32_t prev = kNone;
    for (int32_t id = list.head; id != kNone; id = blocks_[id].next) {
        if (id < 0 || id >= num_blocks()) return fmt::format("{} list: block id {}", name, id);
        if (++count > num_blocks()) return fmt::format("{} list: a cycle", name);
        const Block& block = blocks_[id];
        if (block.place != place)
            return fmt::format("{} list: block {} is not marked so", name, id);
        if (block.prev != prev) return fmt::format("{} list: block {}'s prev is wrong", name, id);
        if (block.ref_count != 0) {
            return fmt::format("{} list: block {} has {} holders", name, id, block.ref_count);
        }
        if (block.has_hash != (place == Place::kCached)) {
            return fmt::format("{} list: block {} {} a key", name, id,
                               block.has_hash ? "has" : "lacks");
        }
        prev = id;
    }
    if (list.tail != prev)
        return fmt::format("{} list: the tail is {}, not {}", name, list.tail, prev);
    if (list.size != count)
        return fmt::format("{} list: size {}, walked {}", name, list.size, count);
    return "";
}

std::string KvBlockManager::check_invariants() const {
    for (Place place : {Place::kFree, Place::kCached}) {
        if (std::string error = check_list(place); !error.empty()) return error;
    }
    // Holders per block, from the tables; a table holds a block at most once.
    std::vector<int64_t> holders(blocks_.size(), 0);
    std::vector<uint64_t> seen_in(blocks_.size(), 0);
    std::vector<bool> seen(blocks_.size(), false);
    for (const auto& [request_id, request] : requests_) {
        if (request.block_hashes.size() > request.block_ids.size()) {
            return fmt::format("request {}: {} keys for {} blocks", request_id,
                               request.block_hashes.size(), request.block_ids.size());
        }
        for (size_t i = 0; i < request.block_ids.size(); ++i) {
            const int32_t id = request.block_ids[i];
            if (id < 0 || id >= num_blocks()) {
                return fmt::format("request {}: block id {}", request_id, id);
            }
            if (seen[id] && seen_in[id] == request_id) {
                return fmt::format("request {}: holds block {} twice", request_id, id);
            }
            seen[id] = true;
            seen_in[id] = request_id;
            ++holders[id];
            const Block& block = blocks_[id];
            if (block.has_hash &&
                (i >= request.block_hashes.size() || block.hash != request.block_hashes[i])) {
                return fmt::format("request {}: block {} (position {}) has a key not of its chain",
                                   request_id, id, i);
            }
        }
    }
    int64_t num_keyed = 0;
    int64_t num_listed[2] = {0, 0};
    for (int32_t id = 0; id < num_blocks(); ++id) {
        const Block& block = blocks_[id];
        if (block.ref_count != holders[id]) {
            return fmt::format("block {}: ref count {} but {} tables hold it", id, block.ref_count,
                               holders[id]);
        }
        if ((block.ref_count > 0) != (block.place == Place::kInUse)) {
            return fmt::format("block {}: {} holders but {} in use", id, block.ref_count,
                               block.place == Place::kInUse ? "marked" : "not marked");
        }
        if (block.place != Place::kInUse) ++num_listed[block.place == Place::kFree ? 0 : 1];
        if (block.has_hash) {
            ++num_keyed;
            const auto entry = hash_to_block_.find(block.hash);
            if (entry == hash_to_block_.end() || entry->second != id) {
                return fmt::format("block {}: its key does not map to it", id);
            }
        }
    }
    // Marked free or cached but not reachable from that list (the walks counted the reachable).
    if (num_listed[0] != free_list_.size || num_listed[1] != cached_list_.size) {
        return fmt::format("{} blocks marked free and {} cached, lists of {} and {}", num_listed[0],
                           num_listed[1], free_list_.size, cached_list_.size);
    }
    if (num_keyed != static_cast<int64_t>(hash_to_block_.size())) {
        return fmt::format("{} keyed blocks but {} keys in the map", num_keyed,
                           hash_to_block_.size());
    }
    if (!enable_prefix_caching_ && !hash_to_block_.empty()) return "keys with caching off";
    if (prefix_cache_hit_tokens_ > prefix_cache_query_tokens_) return "more hits than queries";
    return "";
}

}  // namespace fourbit
