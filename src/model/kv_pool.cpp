#include "model/kv_pool.h"

#include <sys/mman.h>

#include <atomic>
#include <memory>

#include "util/error.h"

namespace fourbit {

namespace {

// Anonymous memory, zero and page-aligned: the kernel commits a page when it is first written,
// so a pool sized for max_num_seqs full contexts costs only what sequences actually fill.
Tensor lazily_committed(DType dtype, int64_t rows, int64_t cols) {
    const size_t bytes = static_cast<size_t>(rows * cols) * dtype_size_bytes(dtype);
    void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) fail("out of memory reserving {} MiB for the KV cache", bytes >> 20);
    std::shared_ptr<const void> owner(
        memory, [bytes](const void* p) { munmap(const_cast<void*>(p), bytes); });
    return Tensor::borrow(dtype, {rows, cols}, memory, std::move(owner));
}

uint64_t next_pool_id() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
}

}  // namespace

KvPool::KvPool(const MiniMaxM2Config& config, int64_t num_blocks, int64_t block_size, Device device,
               DType dtype)
    : num_blocks_(num_blocks), block_size_(block_size), id_(next_pool_id()) {
    if (num_blocks < 1 || block_size < 1) {
        fail("a KV pool needs at least one block of at least one token, got {} blocks of {}",
             num_blocks, block_size);
    }
    if (dtype != DType::f32 && dtype != DType::bf16) {
        fail("a KV pool holds f32 or bf16, not {}", dtype_name(dtype));
    }
    const int64_t rows = num_blocks * block_size;
    for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
        if (device.is_host()) {
            keys_.push_back(lazily_committed(dtype, rows, config.kv_width()));
            values_.push_back(lazily_committed(dtype, rows, config.kv_width()));
        } else {
            keys_.push_back(Tensor::zeros(dtype, {rows, config.kv_width()}, device));
            values_.push_back(Tensor::zeros(dtype, {rows, config.kv_width()}, device));
        }
    }
}

int64_t KvPool::bytes_per_block(const MiniMaxM2Config& config, int64_t block_size, DType dtype) {
    return config.num_hidden_layers * 2 * block_size * config.kv_width() *
           static_cast<int64_t>(dtype_size_bytes(dtype));
}

KvLayer KvPool::layer(int64_t index) const {
    return KvLayer{keys_.at(index), values_.at(index), block_size_};
}

}  // namespace fourbit
