#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/attention.h"
#include "ops/cpu/kernels.h"

namespace fourbit::cpu {

void kv_cache_write(const Tensor& keys, const Tensor& values, int64_t first_position,
                    const KvPages& pages) {
    const int64_t n = keys.dim(0), width = keys.dim(1), block_size = pages.block_size;
    Tensor key_pool = pages.keys, value_pool = pages.values;  // handles onto the shared pool
    for (int64_t i = 0; i < n; ++i) {
        const int64_t position = first_position + i;
        const int64_t row =
            pages.block_table[position / block_size] * block_size + position % block_size;
        std::memcpy(key_pool.data<float>() + row * width, keys.data<float>() + i * width,
                    width * sizeof(float));
        std::memcpy(value_pool.data<float>() + row * width, values.data<float>() + i * width,
                    width * sizeof(float));
    }
}

void attention_paged(const Tensor& q, const KvPages& pages, int64_t n_ctx,
                     const AttentionShape& shape, Tensor& out) {
    const Kernels& kernels = cpu::kernels();
    const int64_t n_new = q.dim(0), d = shape.head_dim, block_size = pages.block_size;
    const int64_t group = shape.n_heads / shape.n_kv_heads;
    const int64_t q_width = shape.n_heads * d, kv_width = shape.n_kv_heads * d;
    const int64_t first_position = n_ctx - n_new;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    const float* qs = q.data<float>();
    const float* ks = pages.keys.data<float>();
    const float* vs = pages.values.data<float>();
    const int32_t* table = pages.block_table.data();
    float* os = out.data<float>();
    // The pool row of position s: blocks are contiguous runs of block_size rows.
    auto row_of = [&](int64_t s) { return table[s / block_size] * block_size + s % block_size; };
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
                    scores[s] =
                        kernels.dot_f32(query, ks + row_of(s) * kv_width + kv_offset, d) * scale;
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
                    kernels.axpy(scores[s] * inv_total, vs + row_of(s) * kv_width + kv_offset, o,
                                 d);
                }
            }
        }
    }
}

}  // namespace fourbit::cpu
