// One sequence's own KV cache, outside the engine: a private pool whose blocks the sequence
// holds in order. For the CLI, tests and benchmarks that run one sequence at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_pool.h"
#include "model/minimax_m2.h"

namespace fourbit {

class SequenceCache {
public:
    // Room for `capacity_tokens` positions (prompt plus everything generated), on the model's
    // device, of f32 or bf16 keys and values.
    SequenceCache(const MiniMaxM2& model, int64_t capacity_tokens, int64_t block_size = 16,
                  DType dtype = DType::f32);

    int64_t n_tokens() const { return n_tokens_; }
    // Runs token_ids after what the cache holds and keeps their keys and values; returns the
    // forward's logits. More tokens than the capacity left is an Error. `observer`: see
    // MiniMaxM2::forward.
    Tensor forward(const MiniMaxM2& model, std::span<const int32_t> token_ids,
                   LogitRows logits = LogitRows::last, ForwardObserver* observer = nullptr);

private:
    KvPool pool_;
    std::vector<int32_t> block_table_;
    int64_t n_tokens_ = 0;
};

}  // namespace fourbit
