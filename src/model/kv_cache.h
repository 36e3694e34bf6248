// One sequence's keys and values for every layer, f32, contiguous per layer
// ([n_tokens, n_kv_heads * head_dim]). Keys are stored after QK-norm and RoPE. Growing; the
// paged, shared cache of the server replaces it there.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_config.h"
#include "tensor/tensor.h"

namespace fourbit {

class KvCache {
public:
    explicit KvCache(const MiniMaxM2Config& config);

    // Tokens whose keys and values every layer holds.
    int64_t n_tokens() const { return n_tokens_; }
    // Appends rows of `keys` and `values` ([n, kv_width] f32) to one layer.
    void append(int64_t layer, const Tensor& keys, const Tensor& values);
    // Views of a layer's rows [0, n): valid until the next append to that layer.
    Tensor keys(int64_t layer, int64_t n) const;
    Tensor values(int64_t layer, int64_t n) const;
    // Marks `n` more tokens as held by all layers (after each layer appended them).
    void commit(int64_t n);
    // Forgets everything from position `n` on (the continuation of a shorter prefix).
    void truncate(int64_t n);

private:
    int64_t kv_width_;
    int64_t n_tokens_ = 0;
    std::vector<std::vector<float>> keys_, values_;
};

}  // namespace fourbit
