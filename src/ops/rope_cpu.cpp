#include <cmath>
#include <vector>

#include "ops/rope.h"

namespace fourbit::cpu {

void rope_neox(Tensor& x, std::span<const int32_t> positions, const RopeShape& shape) {
    const int64_t half = shape.rotary_dim / 2;
    // As transformers does: inverse frequencies and angles in f32, so long positions round the
    // same way; cos and sin of the f32 angle.
    std::vector<float> inv_freq(half);
    for (int64_t i = 0; i < half; ++i) {
        inv_freq[i] = static_cast<float>(
            1.0 / std::pow(shape.theta, static_cast<double>(2 * i) / shape.rotary_dim));
    }
    const int64_t tokens = x.dim(0), width = x.dim(1);
    float* data = x.data<float>();
#pragma omp parallel for schedule(static) if (tokens > 16)
    for (int64_t t = 0; t < tokens; ++t) {
        std::vector<float> cos_table(half), sin_table(half);
        for (int64_t i = 0; i < half; ++i) {
            float angle = static_cast<float>(positions[t]) * inv_freq[i];
            cos_table[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
            sin_table[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
        }
        for (int64_t h = 0; h < shape.n_heads; ++h) {
            float* head = data + t * width + h * shape.head_dim;
            for (int64_t i = 0; i < half; ++i) {
                float a = head[i], b = head[i + half];
                head[i] = a * cos_table[i] - b * sin_table[i];
                head[i + half] = b * cos_table[i] + a * sin_table[i];
            }
        }
    }
}

}  // namespace fourbit::cpu
