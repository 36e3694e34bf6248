// A string -> token id hash map for the tokenizer's vocabularies: keys packed in one arena,
// open addressing, lookups by string_view without allocating. Internal to the tokenizer.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace fourbit::text_detail {

// 64-bit hash of a byte string (multiply-xorshift over 8-byte words). Never 0, so 0 can mark
// an empty slot.
inline uint64_t hash_bytes(std::string_view s) {
    constexpr uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xbf58476d1ce4e5b9ull;
    uint64_t h = k1 ^ (s.size() * k2);
    const char* p = s.data();
    size_t n = s.size();
    while (n >= 8) {
        uint64_t v;
        std::memcpy(&v, p, 8);
        h = (h ^ v) * k2;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v ^ (static_cast<uint64_t>(n) << 59)) * k1;
    h ^= h >> 29;
    h *= k2;
    h ^= h >> 32;
    return h | 1;
}

class StringIdMap {
public:
    // Adds `key` -> `id`; false (and no change) when `key` is already present.
    bool insert(std::string_view key, int32_t id) {
        if ((count_ + 1) * 2 > slots_.size()) grow();
        const uint64_t hash = hash_bytes(key);
        size_t i = hash & mask_;
        while (slots_[i].hash != 0) {
            if (slots_[i].hash == hash && key_of(slots_[i]) == key) return false;
            i = (i + 1) & mask_;
        }
        slots_[i] =
            Slot{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), id};
        arena_.append(key);
        ++count_;
        return true;
    }

    // The id of `key`, or -1.
    int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }
    int32_t find(std::string_view key, uint64_t hash) const {
        if (slots_.empty()) return -1;
        size_t i = hash & mask_;
        while (slots_[i].hash != 0) {
            if (slots_[i].hash == hash && key_of(slots_[i]) == key) return slots_[i].id;
            i = (i + 1) & mask_;
        }
        return -1;
    }

    size_t size() const { return count_; }

    void reserve(size_t n) {
        while (slots_.size() < n * 2) grow();
    }

private:
    struct Slot {
        uint64_t hash = 0;
        uint32_t offset = 0;
        uint32_t length = 0;
        int32_t id = -1;
    };

    std::string_view key_of(const Slot& s) const {
        return std::string_view(arena_).substr(s.offset, s.length);
    }

    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
        mask_ = slots_.size() - 1;
        for (const Slot& s : old) {
            if (s.hash == 0) continue;
            size_t i = s.hash & mask_;
            while (slots_[i].hash != 0) i = (i + 1) & mask_;
            slots_[i] = s;
        }
    }

    std::vector<Slot> slots_;
    std::string arena_;
    size_t count_ = 0;
    size_t mask_ = 0;
};

}  // namespace fourbit::text_detail
