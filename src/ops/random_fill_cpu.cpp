#include "ops/random_fill.h"
#include "tensor/numeric.h"

namespace fourbit::cpu {

void fill_uniform(Tensor& tensor, float low, float high, uint64_t seed) {
    const int64_t n = tensor.numel();
    const bool bf16 = tensor.dtype() == DType::bf16;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
        // The top 24 bits: a float in [0, 1) exactly.
        const float u = static_cast<float>(random_fill_hash(seed, i) >> 40) * 0x1p-24f;
        const float value = low + (high - low) * u;
        if (bf16) {
            tensor.data<uint16_t>()[i] = f32_to_bf16(value);
        } else {
            tensor.data<float>()[i] = value;
        }
    }
}

void fill_bytes(Tensor& tensor, uint8_t low, uint8_t high, uint64_t seed) {
    const int64_t n = static_cast<int64_t>(tensor.size_bytes());
    const uint32_t span = static_cast<uint32_t>(high - low) + 1;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
        tensor.data<uint8_t>()[i] =
            static_cast<uint8_t>(low + (random_fill_hash(seed, i) >> 32) % span);
    }
}

}  // namespace fourbit::cpu
