#include "model/sequence_cache.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace fourbit {

namespace {

int64_t blocks_for(int64_t tokens, int64_t block_size) {
    return std::max<int64_t>(1, (tokens + block_size - 1) / block_size);
}

}  // namespace

SequenceCache::SequenceCache(const MiniMaxM2& model, int64_t capacity_tokens, int64_t block_size,
                             DType dtype)
    : pool_(model.config(), blocks_for(capacity_tokens, block_size), block_size,
            model.weights().device(), dtype),
      block_table_(pool_.num_blocks()) {
    std::iota(block_table_.begin(), block_table_.end(), 0);
}

Tensor SequenceCache::forward(const MiniMaxM2& model, std::span<const int32_t> token_ids,
                              LogitRows logits, ForwardObserver* observer) {
    const int64_t n = static_cast<int64_t>(token_ids.size());
    const int64_t capacity = pool_.num_blocks() * pool_.block_size();
    if (n_tokens_ + n > capacity) {
        fail("{} more tokens do not fit in a cache of {} positions holding {}", n, capacity,
             n_tokens_);
    }
    SequenceInput input{token_ids, n_tokens_, block_table_, logits};
    Tensor out = model.forward(std::span<const SequenceInput>(&input, 1), pool_, observer);
    n_tokens_ += n;
    return out;
}

}  // namespace fourbit
