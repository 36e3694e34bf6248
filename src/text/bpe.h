// The BPE model of a byte-level tokenizer: merges applied to the bytes of one pre-token, a
// thread-local cache of whole pre-tokens, and the buffers that make the hot path allocation
// free. Internal to the tokenizer (text/tokenizer.h is the interface).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "text/string_id_map.h"

namespace fourbit::text_detail {

// (left id, right id) -> (rank, merged id), open addressing on the packed pair.
class MergeTable {
public:
    MergeTable() { reserve(0); }
    void reserve(size_t n_merges);
    // A later merge of the same pair replaces the earlier one (as in Hugging Face).
    void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged);
    // Rank of the pair, or kNoMerge; `*merged` receives the merged id.
    static constexpr uint32_t kNoMerge = UINT32_MAX;
    uint32_t find(int32_t left, int32_t right, int32_t* merged) const {
        const uint64_t key = pack(left, right);
        size_t i = slot_of(key);
        while (true) {
            const Slot& s = slots_[i];
            if (s.key == key) {
                *merged = s.merged;
                return s.rank;
            }
            if (s.key == kEmpty) return kNoMerge;
            i = (i + 1) & mask_;
        }
    }

private:
    static constexpr uint64_t kEmpty = UINT64_MAX;
    struct Slot {
        uint64_t key = kEmpty;
        uint32_t rank = 0;
        int32_t merged = -1;
    };
    static uint64_t pack(int32_t left, int32_t right) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
               static_cast<uint32_t>(right);
    }
    size_t slot_of(uint64_t key) const { return (key * 0x9e3779b97f4a7c15ull) >> shift_; }

    std::vector<Slot> slots_;
    size_t mask_ = 0;
    int shift_ = 58;  // 64 - log2(slots)
};

// Reusable buffers of one thread's BPE work.
struct BpeWork {
    std::vector<int32_t> ids;
    std::vector<uint32_t> ranks;
    std::vector<int32_t> merged;
    // The linked-list form for long words.
    std::vector<int32_t> prev, next;
    struct Candidate {
        uint32_t rank;
        int32_t pos;    // left symbol
        int32_t left;   // the pair's ids when pushed: if either symbol changed since,
        int32_t right;  // the candidate is stale
        int32_t merged;
    };
    std::vector<Candidate> heap;
};

// Thread-local cache of pre-token bytes -> ids, bounded: cleared (keeping its memory) when
// full. Hits allocate nothing.
class BpeCache {
public:
    BpeCache();
    // Appends the cached ids of `key` to `out`; false when absent.
    bool lookup(std::string_view key, uint64_t hash, std::vector<int32_t>& out) const;
    void insert(std::string_view key, uint64_t hash, const int32_t* ids, size_t n_ids);
    static constexpr size_t kMaxKeyBytes = 256;  // longer pre-tokens are rare: not kept

private:
    struct Slot {
        uint64_t hash = 0;
        uint32_t key_offset = 0;
        uint32_t ids_offset = 0;
        uint16_t key_length = 0;
        uint16_t n_ids = 0;
    };
    void clear();
    std::vector<Slot> slots_;
    std::string keys_;
    std::vector<int32_t> ids_;
    size_t count_ = 0;
};

struct BpeModel {
    // Id of each single byte's token (the byte-level character), or -1 if the vocabulary
    // lacks it.
    std::array<int32_t, 256> byte_ids{};
    MergeTable merges;
    // Raw bytes -> id for `ignore_merges` (filled only when it is set).
    StringIdMap raw_vocab;
    bool ignore_merges = false;
    int32_t unk_id = -1;  // -1: bytes without a token are dropped
    bool fuse_unk = false;

    // Appends the ids of one pre-token (its raw bytes), through the cache.
    void encode(std::string_view bytes, BpeCache& cache, BpeWork& work,
                std::vector<int32_t>& out) const;
    // The same without the cache.
    void merge_word(std::string_view bytes, BpeWork& work, std::vector<int32_t>& out) const;

private:
    void merge_short(BpeWork& work) const;
    void merge_long(BpeWork& work) const;
};

}  // namespace fourbit::text_detail
