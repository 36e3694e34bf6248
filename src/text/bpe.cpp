#include "text/bpe.h"

#include <algorithm>
#include <cstring>

namespace fourbit::text_detail {

void MergeTable::reserve(size_t n_merges) {
    size_t size = 64;
    shift_ = 58;
    while (size < n_merges * 2) {
        size *= 2;
        --shift_;
    }
    slots_.assign(size, Slot{});
    mask_ = size - 1;
}

void MergeTable::insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    const uint64_t key = pack(left, right);
    size_t i = slot_of(key);
    while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
    slots_[i] = Slot{key, rank, merged};
}

BpeCache::BpeCache() : slots_(1 << 16) {}

bool BpeCache::lookup(std::string_view key, uint64_t hash, std::vector<int32_t>& out) const {
    const size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    while (slots_[i].hash != 0) {
        const Slot& s = slots_[i];
        if (s.hash == hash && s.key_length == key.size() &&
            std::memcmp(keys_.data() + s.key_offset, key.data(), key.size()) == 0) {
            out.insert(out.end(), ids_.begin() + s.ids_offset,
                       ids_.begin() + s.ids_offset + s.n_ids);
            return true;
        }
        i = (i + 1) & mask;
    }
    return false;
}

void BpeCache::clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    keys_.clear();
    ids_.clear();
    count_ = 0;
}

void BpeCache::insert(std::string_view key, uint64_t hash, const int32_t* ids, size_t n_ids) {
    if (key.size() > kMaxKeyBytes || n_ids > UINT16_MAX) return;
    if ((count_ + 1) * 2 > slots_.size()) clear();  // half full: start again
    const size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = Slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(ids_.size()),
                     static_cast<uint16_t>(key.size()), static_cast<uint16_t>(n_ids)};
    keys_.append(key);
    ids_.insert(ids_.end(), ids, ids + n_ids);
    ++count_;
}

void BpeModel::encode(std::string_view bytes, BpeCache& cache, BpeWork& work,
                      std::vector<int32_t>& out) const {
    if (bytes.size() == 1) {  // the most common pre-token: no merge can apply
        const int32_t id = byte_ids[static_cast<uint8_t>(bytes[0])];
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const uint64_t hash = hash_bytes(bytes);
    if (ignore_merges) {
        const int32_t id = raw_vocab.find(bytes, hash);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    if (bytes.size() <= BpeCache::kMaxKeyBytes && cache.lookup(bytes, hash, out)) return;
    const size_t start = out.size();
    merge_word(bytes, work, out);
    cache.insert(bytes, hash, out.data() + start, out.size() - start);
}

void BpeModel::merge_word(std::string_view bytes, BpeWork& work, std::vector<int32_t>& out) const {
    // Initial symbols: one per byte (one byte-level character each). A byte without a token
    // becomes the unknown token (consecutive ones fused if asked) or is dropped.
    work.ids.clear();
    bool last_was_unk = false;
    for (char c : bytes) {
        const int32_t id = byte_ids[static_cast<uint8_t>(c)];
        if (id >= 0) {
            work.ids.push_back(id);
            last_was_unk = false;
        } else if (unk_id >= 0) {
            if (!(fuse_unk && last_was_unk)) work.ids.push_back(unk_id);
            last_was_unk = true;
        }
    }
    if (work.ids.size() > 1) {
        if (work.ids.size() <= 48) {
            merge_short(work);
        } else {
            merge_long(work);
        }
    }
    out.insert(out.end(), work.ids.begin(), work.ids.end());
}

// Quadratic but cache-friendly: the best pair is found by a scan over the pair ranks, and
// only the two pairs next to a merge are looked up again.
void BpeModel::merge_short(BpeWork& work) const {
    std::vector<int32_t>& ids = work.ids;
    std::vector<uint32_t>& ranks = work.ranks;
    std::vector<int32_t>& merged = work.merged;
    size_t n = ids.size();
    ranks.resize(n);
    merged.resize(n);
    for (size_t i = 0; i + 1 < n; ++i) ranks[i] = merges.find(ids[i], ids[i + 1], &merged[i]);
    ranks[n - 1] = MergeTable::kNoMerge;
    while (n > 1) {
        size_t best = 0;
        uint32_t best_rank = ranks[0];
        for (size_t i = 1; i + 1 < n; ++i) {
            if (ranks[i] < best_rank) {  // strict: the leftmost of equal ranks wins
                best_rank = ranks[i];
                best = i;
            }
        }
        if (best_rank == MergeTable::kNoMerge) break;
        ids[best] = merged[best];
        for (size_t i = best + 1; i + 1 < n; ++i) {
            ids[i] = ids[i + 1];
            ranks[i] = ranks[i + 1];
            merged[i] = merged[i + 1];
        }
        --n;
        ranks[n - 1] = MergeTable::kNoMerge;
        if (best > 0) ranks[best - 1] = merges.find(ids[best - 1], ids[best], &merged[best - 1]);
        if (best + 1 < n) ranks[best] = merges.find(ids[best], ids[best + 1], &merged[best]);
    }
    ids.resize(n);
}

// O(n log n) for long pre-tokens (a paragraph of CJK or a run of one character): a heap of
// candidate merges over a linked list of symbols, stale candidates skipped when popped.
void BpeModel::merge_long(BpeWork& work) const {
    std::vector<int32_t>& ids = work.ids;
    const int32_t n = static_cast<int32_t>(ids.size());
    work.prev.resize(n);
    work.next.resize(n);
    for (int32_t i = 0; i < n; ++i) {
        work.prev[i] = i - 1;
        work.next[i] = i + 1 < n ? i + 1 : -1;
    }
    auto& heap = work.heap;
    heap.clear();
    // std heaps are max-heaps: "greater" candidate = lower rank, then lower position.
    auto later = [](const BpeWork::Candidate& a, const BpeWork::Candidate& b) {
        return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    };
    auto push = [&](int32_t pos) {
        const int32_t right = work.next[pos];
        if (right < 0) return;
        int32_t merged = -1;
        const uint32_t rank = merges.find(ids[pos], ids[right], &merged);
        if (rank == MergeTable::kNoMerge) return;
        heap.push_back({rank, pos, ids[pos], ids[right], merged});
        std::push_heap(heap.begin(), heap.end(), later);
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later);
        const BpeWork::Candidate top = heap.back();
        heap.pop_back();
        // Stale when the left symbol was merged away (-1) or grew, or its right neighbour is
        // another symbol now: a symbol only changes by growing, so equal ids mean the same
        // pair (ids are >= 0).
        const int32_t right = work.next[top.pos];
        if (ids[top.pos] != top.left || right < 0 || ids[right] != top.right) continue;
        ids[top.pos] = top.merged;
        ids[right] = -1;
        work.next[top.pos] = work.next[right];
        if (work.next[right] >= 0) work.prev[work.next[right]] = top.pos;
        if (work.prev[top.pos] >= 0) push(work.prev[top.pos]);
        push(top.pos);
    }
    int32_t k = 0;
    for (int32_t i = 0; i < n; ++i) {
        if (ids[i] >= 0) ids[k++] = ids[i];
    }
    ids.resize(k);
}

}  // namespace fourbit::text_detail
