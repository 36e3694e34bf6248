// rope_neox: rotary position embedding, NeoX (rotate-half) pairing, on the first rotary_dim
// dimensions of each head; the rest pass through (MiniMax-M2: 64 of 128). In place.
//   x [n_tokens, n_heads * head_dim] f32      positions [n_tokens] i32 on x's device (the
//                                             span form: host positions, for host rows)
// inv_freq[i] = theta^(-2i / rotary_dim); pair (j, j + rotary_dim / 2) rotates by pos * inv_freq[j].
#pragma once

#include <cstdint>
#include <span>

#include "tensor/tensor.h"

namespace fourbit {

struct RopeShape {
    int64_t n_heads;
    int64_t head_dim;
    int64_t rotary_dim;
    double theta;
};

void rope_neox(Tensor& x, std::span<const int32_t> positions, const RopeShape& shape);
void rope_neox(Tensor& x, const Tensor& positions, const RopeShape& shape);

namespace cpu {
void rope_neox(Tensor& x, std::span<const int32_t> positions, const RopeShape& shape);
}
namespace cuda {
inline constexpr int64_t kRopeCudaMaxRotaryDim = 512;
void rope_neox(Tensor& x, const Tensor& positions, const RopeShape& shape);
}

}  // namespace fourbit
