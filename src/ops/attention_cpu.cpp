#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/attention.h"
#include "ops/cpu/kernels.h"
#include "tensor/numeric.h"

namespace fourbit::cpu {

namespace {

// The pool row of token t's position s: blocks are contiguous runs of block_size rows.
struct RowOf {
    const int32_t* tables;
    int64_t block_size;
    int64_t operator()(int32_t table_offset, int64_t s) const {
        return tables[table_offset + s / block_size] * block_size + s % block_size;
    }
};

}  // namespace

void kv_cache_write(const Tensor& keys, const Tensor& values, const PagedTokens& tokens,
                    const KvLayer& pool) {
    const int64_t n = keys.dim(0), width = keys.dim(1);
    const RowOf row_of{tokens.block_tables.data<int32_t>(), pool.block_size};
    Tensor key_pool = pool.keys, value_pool = pool.values;  // handles onto the shared pool
    const bool bf16 = pool.keys.dtype() == DType::bf16;
    auto store = [&](Tensor& to, int64_t row, const float* from) {
        if (bf16) {
            uint16_t* out = to.data<uint16_t>() + row * width;
            for (int64_t i = 0; i < width; ++i) out[i] = f32_to_bf16(from[i]);
        } else {
            std::memcpy(to.data<float>() + row * width, from, width * sizeof(float));
        }
    };
    for (int64_t t = 0; t < n; ++t) {
        const int64_t row =
            row_of(tokens.table_offsets.data<int32_t>()[t], tokens.positions.data<int32_t>()[t]);
        store(key_pool, row, keys.data<float>() + t * width);
        store(value_pool, row, values.data<float>() + t * width);
    }
}

void attention_paged(const Tensor& q, const PagedTokens& tokens, const KvLayer& pool,
                     const AttentionShape& shape, Tensor& out) {
    const Kernels& kernels = cpu::kernels();
    const int64_t n_tokens = q.dim(0), d = shape.head_dim;
    const int64_t group = shape.n_heads / shape.n_kv_heads;
    const int64_t q_width = shape.n_heads * d, kv_width = shape.n_kv_heads * d;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    const float* qs = q.data<float>();
    const int32_t* positions = tokens.positions.data<int32_t>();
    const int32_t* offsets = tokens.table_offsets.data<int32_t>();
    const RowOf row_of{tokens.block_tables.data<int32_t>(), pool.block_size};
    float* os = out.data<float>();
    // Work of the whole call in multiply-adds: below ~1e5 one thread does it faster.
    int64_t macs = 0;
    for (int64_t t = 0; t < n_tokens; ++t) macs += (positions[t] + 1) * shape.n_heads * d * 2;
#pragma omp parallel if (macs >= (int64_t(1) << 17))
    {
        std::vector<float> scores(tokens.max_context), value_row(d);
        // Key . query and a value row in f32, from the pool's f32 or bf16 rows.
        const bool bf16 = pool.keys.dtype() == DType::bf16;
        auto key_dot = [&](int64_t row, int64_t offset, const float* query) {
            return bf16 ? kernels.dot_bf16_f32(pool.keys.data<uint16_t>() + row * kv_width + offset,
                                               query, d)
                        : kernels.dot_f32(query, pool.keys.data<float>() + row * kv_width + offset,
                                          d);
        };
        auto value_at = [&](int64_t row, int64_t offset) -> const float* {
            if (!bf16) return pool.values.data<float>() + row * kv_width + offset;
            kernels.bf16_to_f32(pool.values.data<uint16_t>() + row * kv_width + offset,
                                value_row.data(), d);
            return value_row.data();
        };
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int64_t t = 0; t < n_tokens; ++t) {
            for (int64_t h = 0; h < shape.n_heads; ++h) {
                const int64_t visible = positions[t] + 1;
                const float* query = qs + t * q_width + h * d;
                const int64_t kv_offset = (h / group) * d;
                float max_score = -INFINITY;
                for (int64_t s = 0; s < visible; ++s) {
                    scores[s] = key_dot(row_of(offsets[t], s), kv_offset, query) * scale;
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
                    kernels.axpy(scores[s] * inv_total, value_at(row_of(offsets[t], s), kv_offset),
                                 o, d);
                }
            }
        }
    }
}

}  // namespace fourbit::cpu
