// The KV cache's memory: per layer, one pool of fixed-size blocks of keys and values (f32 or
// bf16, keys after QK-norm and RoPE), on the host or on the model's CUDA device. Which sequence
// holds which blocks is the caller's business (the engine's KvBlockManager, or a SequenceCache that
// owns a pool alone).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_config.h"
#include "ops/attention.h"
#include "tensor/tensor.h"

namespace fourbit {

class KvPool {
public:
    // num_blocks * block_size positions for every layer, zero: on the host committed as they
    // are written, on a CUDA device allocated at once. dtype: f32 or bf16 (ops/attention.h).
    KvPool(const MiniMaxM2Config& config, int64_t num_blocks, int64_t block_size,
           Device device = Device::host(), DType dtype = DType::f32);

    // Keys plus values of all layers for one block.
    static int64_t bytes_per_block(const MiniMaxM2Config& config, int64_t block_size,
                                   DType dtype = DType::f32);

    int64_t num_blocks() const { return num_blocks_; }
    int64_t block_size() const { return block_size_; }
    Device device() const { return keys_.front().device(); }
    DType dtype() const { return keys_.front().dtype(); }
    // Unique among the pools of this process, never reused: what a recorded CUDA graph, which
    // holds every layer's pool addresses, is keyed by (a freed pool's addresses may come back
    // in another pool's layers in another order).
    uint64_t id() const { return id_; }
    KvLayer layer(int64_t index) const;

private:
    int64_t num_blocks_, block_size_;
    uint64_t id_;
    std::vector<Tensor> keys_, values_;  // per layer [num_blocks * block_size, kv_width]
};

}  // namespace fourbit
