#include "model/kv_cache.h"

#include "util/error.h"

namespace fourbit {

KvCache::KvCache(const MiniMaxM2Config& config)
    : kv_width_(config.kv_width()),
      keys_(config.num_hidden_layers),
      values_(config.num_hidden_layers) {}

void KvCache::append(int64_t layer, const Tensor& keys, const Tensor& values) {
    FOURBIT_ASSERT(keys.rank() == 2 && keys.dim(1) == kv_width_ && values.shape() == keys.shape(),
                   "kv append {}", shape_text(keys.shape()));
    auto& k = keys_.at(layer);
    auto& v = values_.at(layer);
    FOURBIT_ASSERT(static_cast<int64_t>(k.size()) == n_tokens_ * kv_width_,
                   "layer {} appended twice in one step", layer);
    k.insert(k.end(), keys.data<float>(), keys.data<float>() + keys.numel());
    v.insert(v.end(), values.data<float>(), values.data<float>() + values.numel());
}

Tensor KvCache::keys(int64_t layer, int64_t n) const {
    FOURBIT_ASSERT(static_cast<int64_t>(keys_.at(layer).size()) >= n * kv_width_, "kv keys");
    return Tensor::borrow(DType::f32, {n, kv_width_}, keys_[layer].data(), nullptr);
}

Tensor KvCache::values(int64_t layer, int64_t n) const {
    FOURBIT_ASSERT(static_cast<int64_t>(values_.at(layer).size()) >= n * kv_width_, "kv values");
    return Tensor::borrow(DType::f32, {n, kv_width_}, values_[layer].data(), nullptr);
}

void KvCache::commit(int64_t n) {
    n_tokens_ += n;
    for (size_t layer = 0; layer < keys_.size(); ++layer) {
        FOURBIT_ASSERT(static_cast<int64_t>(keys_[layer].size()) == n_tokens_ * kv_width_,
                       "layer {} holds {} values for {} tokens", layer, keys_[layer].size(),
                       n_tokens_);
    }
}

void KvCache::truncate(int64_t n) {
    FOURBIT_ASSERT(n >= 0 && n <= n_tokens_, "truncate to {} of {}", n, n_tokens_);
    n_tokens_ = n;
    for (auto& k : keys_) k.resize(n * kv_width_);
    for (auto& v : values_) v.resize(n * kv_width_);
}

}  // namespace fourbit
