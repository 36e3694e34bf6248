#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/attention.h"
#include "ops/cpu/kernels.h"

namespace fourbit::cpu {

void attention_causal(const Tensor& q, const Tensor& keys, const Tensor& values,
                      const AttentionShape& shape, Tensor& out) {
    const Kernels& kernels = cpu::kernels();
    const int64_t n_new = q.dim(0), n_ctx = keys.dim(0), d = shape.head_dim;
    const int64_t group = shape.n_heads / shape.n_kv_heads;
    const int64_t q_width = shape.n_heads * d, kv_width = shape.n_kv_heads * d;
    const int64_t first_position = n_ctx - n_new;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    const float* qs = q.data<float>();
    const float* ks = keys.data<float>();
    const float* vs = values.data<float>();
    float* os = out.data<float>();
    // Work of the whole call in multiply-adds: below ~1e5 one thread does it faster.
    const int64_t macs = n_new * n_ctx * shape.n_heads * d * 2;
#pragma omp parallel if (macs >= (int64_t(1) << 17))
    {
        std::vector<float> scores(n_ctx);
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int64_t t = 0; t < n_new; ++t) {
            for (int64_t h = 0; h < shape.n_heads; ++h) {
                const int64_t visible = first_position + t + 1;
                const float* query = qs + t * q_width + h * d;
                const int64_t kv_offset = (h / group) * d;
                float max_score = -INFINITY;
                for (int64_t s = 0; s < visible; ++s) {
                    scores[s] = kernels.dot_f32(query, ks + s * kv_width + kv_offset, d) * scale;
                    max_score = std::max(max_score, scores[s]);
                }
                double total = 0;
                for (int64_t s = 0; s < visible; ++s) {
                    scores[s] = std::exp(scores[s] - max_score);
                    total += scores[s];
                }
                float* o = os + t * q_width + h * d;
                std::fill(o, o + d, 0.0f);
                const float inv_total = static_cast<float>(1.0 / total);
                for (int64_t s = 0; s < visible; ++s) {
                    kernels.axpy(scores[s] * inv_total, vs + s * kv_width + kv_offset, o, d);
                }
            }
        }
    }
}

}  // namespace fourbit::cpu
