// Paged attention against a naive double-precision reference over contiguous keys and values:
// the pool's blocks are dealt to the sequence in a scrambled order, with other sequences'
// garbage in between, so any mistake in the position -> row mapping shows.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "support/bf16_tensors.h"
#include "tensor/numeric.h"

namespace fourbit {
namespace {

Tensor random_f32(Shape shape, std::mt19937& rng, float low = -1.0f, float high = 1.0f) {
    Tensor tensor = Tensor::zeros(DType::f32, std::move(shape));
    std::uniform_real_distribution<float> dist(low, high);
    for (int64_t i = 0; i < tensor.numel(); ++i) tensor.data<float>()[i] = dist(rng);
    return tensor;
}

// What a pool of `dtype` keeps of x.
double stored(float x, DType dtype) {
    return dtype == DType::bf16 ? bf16_to_f32(f32_to_bf16(x)) : x;
}

// A pool of `n_blocks` blocks full of noise, and a table of the blocks one sequence owns.
struct Paged {
    Tensor keys, values;
    std::vector<int32_t> table;
    KvLayer layer(int64_t block_size) const { return {keys, values, block_size}; }
    // n new tokens of this one sequence from position `first` on.
    PagedTokens tokens(int64_t first, int64_t n) const {
        const PagedSequence sequence{table, first, n};
        return paged_tokens(std::span<const PagedSequence>(&sequence, 1));
    }
};

Paged scrambled_pool(int64_t n_positions, int64_t block_size, int64_t kv_width, std::mt19937& rng,
                     DType dtype = DType::f32) {
    const int64_t owned = (n_positions + block_size - 1) / block_size;
    const int64_t n_blocks = 2 * owned + 1;
    Paged paged{
        test_support::as_dtype(random_f32({n_blocks * block_size, kv_width}, rng, -50, 50), dtype),
        test_support::as_dtype(random_f32({n_blocks * block_size, kv_width}, rng, -50, 50), dtype),
        {}};
    std::vector<int32_t> ids(n_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    paged.table.assign(ids.begin(), ids.begin() + owned);
    return paged;
}

// The reference attends over the keys and values as the pool stores them.
void expect_attention_matches(const AttentionShape& shape, int64_t n_new, int64_t n_ctx,
                              int64_t block_size, std::mt19937& rng, DType dtype = DType::f32) {
    const int64_t d = shape.head_dim;
    const int64_t q_width = shape.n_heads * d, kv_width = shape.n_kv_heads * d;
    Tensor q = random_f32({n_new, q_width}, rng, -2, 2);
    Tensor keys = random_f32({n_ctx, kv_width}, rng, -2, 2);
    Tensor values = random_f32({n_ctx, kv_width}, rng);
    Paged paged = scrambled_pool(n_ctx, block_size, kv_width, rng, dtype);
    // The history first (as earlier steps would have written it), then the new tokens' rows.
    const int64_t n_old = n_ctx - n_new;
    if (n_old > 0) {
        kv_cache_write(keys.rows(0, n_old), values.rows(0, n_old), paged.tokens(0, n_old),
                       paged.layer(block_size));
    }
    kv_cache_write(keys.rows(n_old, n_new), values.rows(n_old, n_new), paged.tokens(n_old, n_new),
                   paged.layer(block_size));
    Tensor out = Tensor::zeros(DType::f32, {n_new, q_width});
    attention_paged(q, paged.tokens(n_old, n_new), paged.layer(block_size), shape, out);

    const int64_t heads_per_kv = shape.n_heads / shape.n_kv_heads;
    for (int64_t t = 0; t < n_new; ++t) {
        const int64_t position = n_old + t;  // the queries are the last n_new tokens
        for (int64_t h = 0; h < shape.n_heads; ++h) {
            const int64_t kv = h / heads_per_kv;
            std::vector<double> scores(position + 1);
            double max_score = -INFINITY;
            for (int64_t s = 0; s <= position; ++s) {
                double dot = 0;
                for (int64_t i = 0; i < d; ++i) {
                    dot += static_cast<double>(q.data<float>()[t * q_width + h * d + i]) *
                           stored(keys.data<float>()[s * kv_width + kv * d + i], dtype);
                }
                scores[s] = dot / std::sqrt(static_cast<double>(d));
                max_score = std::max(max_score, scores[s]);
            }
            double total = 0;
            for (double& score : scores) total += (score = std::exp(score - max_score));
            for (int64_t i = 0; i < d; ++i) {
                double expected = 0;
                for (int64_t s = 0; s <= position; ++s) {
                    expected += scores[s] / total *
                                stored(values.data<float>()[s * kv_width + kv * d + i], dtype);
                }
                // f32 scores (|q.k| <= 4d, summed with gamma(d)), f32 exp and weights: the
                // softmax weights carry a relative error of ~1e-6; the output, a convex
                // combination of values in [-1, 1], is off by no more than that absolutely.
                ASSERT_NEAR(out.data<float>()[t * q_width + h * d + i], expected, 1e-5)
                    << "token " << t << " head " << h << " dim " << i << " n_new " << n_new
                    << " n_ctx " << n_ctx << " block " << block_size;
            }
        }
    }
}

TEST(Attention, GroupedQueryDecodeAndChunkOverScrambledBlocks) {
    std::mt19937 rng(40);
    const AttentionShape shape{6, 2, 24};  // 3 query heads per kv head; 24 leaves a vector tail
    for (int64_t block_size : {1, 4, 16}) {
        expect_attention_matches(shape, 1, 1, block_size, rng);
        expect_attention_matches(shape, 1, 19, block_size, rng);  // decode after a prompt
        expect_attention_matches(shape, 4, 11, block_size, rng);  // a chunk at the end
        expect_attention_matches(shape, 9, 9, block_size, rng);   // prefill from empty
        expect_attention_matches(shape, 5, 37, block_size, rng);  // a chunk across blocks
    }
}

// A bf16 pool: the same cases, f32 arithmetic on the rounded keys and values.
TEST(Attention, Bf16PoolDecodeAndChunkOverScrambledBlocks) {
    std::mt19937 rng(46);
    const AttentionShape shape{6, 2, 24};
    for (int64_t block_size : {1, 4, 16}) {
        expect_attention_matches(shape, 1, 19, block_size, rng, DType::bf16);
        expect_attention_matches(shape, 9, 9, block_size, rng, DType::bf16);
        expect_attention_matches(shape, 5, 37, block_size, rng, DType::bf16);
    }
    expect_attention_matches({6, 1, 128}, 3, 40, 16, rng, DType::bf16);
}

TEST(Attention, Bf16PoolStoresEachElementRoundedToNearestEven) {
    std::mt19937 rng(47);
    Paged paged = scrambled_pool(10, 4, 8, rng, DType::bf16);
    Tensor keys = random_f32({3, 8}, rng), values = random_f32({3, 8}, rng);
    keys.data<float>()[0] = 1.0f + 0x1p-8f;             // a tie: rounds to the even 1.0
    keys.data<float>()[1] = 1.0f + 0x1p-8f + 0x1p-20f;  // above the tie: up
    kv_cache_write(keys, values, paged.tokens(5, 3), paged.layer(4));  // block 1, rows 1-3
    EXPECT_EQ(bf16_to_f32(paged.keys.data<uint16_t>()[(paged.table[1] * 4 + 1) * 8]), 1.0f);
    EXPECT_EQ(bf16_to_f32(paged.keys.data<uint16_t>()[(paged.table[1] * 4 + 1) * 8 + 1]),
              1.0f + 0x1p-7f);
    for (int64_t r = 0; r < 3; ++r) {
        for (int64_t i = 0; i < 8; ++i) {
            const int64_t row = paged.table[1] * 4 + 1 + r;
            ASSERT_EQ(paged.keys.data<uint16_t>()[row * 8 + i],
                      f32_to_bf16(keys.data<float>()[r * 8 + i]));
            ASSERT_EQ(paged.values.data<uint16_t>()[row * 8 + i],
                      f32_to_bf16(values.data<float>()[r * 8 + i]));
        }
    }
}

TEST(Attention, MiniMaxHeadShape) {
    std::mt19937 rng(41);
    expect_attention_matches({6, 1, 128}, 3, 40, 16, rng);
    expect_attention_matches({4, 4, 16}, 5, 5, 16, rng);  // no grouping
}

TEST(Attention, FirstQueryOfPrefillSeesOnlyItself) {
    // With n_new == n_ctx the first query attends only to position 0: out = v[0] exactly up to
    // the softmax weight 1.
    std::mt19937 rng(42);
    const AttentionShape shape{2, 1, 16};
    Tensor q = random_f32({3, 32}, rng), keys = random_f32({3, 16}, rng),
           values = random_f32({3, 16}, rng);
    Paged paged = scrambled_pool(3, 2, 16, rng);
    kv_cache_write(keys, values, paged.tokens(0, 3), paged.layer(2));
    Tensor out = Tensor::zeros(DType::f32, {3, 32});
    attention_paged(q, paged.tokens(0, 3), paged.layer(2), shape, out);
    for (int h = 0; h < 2; ++h) {
        for (int i = 0; i < 16; ++i) {
            EXPECT_EQ(out.data<float>()[h * 16 + i], values.data<float>()[i]) << h << " " << i;
        }
    }
}

TEST(Attention, WriteTouchesOnlyTheRowsOfItsPositions) {
    std::mt19937 rng(43);
    Paged paged = scrambled_pool(10, 4, 8, rng);
    Tensor before_keys = Tensor::zeros(DType::f32, paged.keys.shape());
    std::copy_n(paged.keys.data<float>(), paged.keys.numel(), before_keys.data<float>());
    Tensor keys = random_f32({3, 8}, rng), values = random_f32({3, 8}, rng);
    kv_cache_write(keys, values, paged.tokens(5, 3), paged.layer(4));  // block 1, rows 1-3
    for (int64_t row = 0; row < paged.keys.dim(0); ++row) {
        const bool written = row / 4 == paged.table[1] && row % 4 >= 1;
        for (int64_t i = 0; i < 8; ++i) {
            const float expected = written ? keys.data<float>()[(row % 4 - 1) * 8 + i]
                                           : before_keys.data<float>()[row * 8 + i];
            ASSERT_EQ(paged.keys.data<float>()[row * 8 + i], expected) << "row " << row;
        }
    }
}

// Three sequences in one call (a decode, a chunk, a prefill) over one pool: each token sees its
// own sequence only, exactly as when each sequence runs alone.
TEST(Attention, ABatchOfSequencesEqualsEachAlone) {
    std::mt19937 rng(45);
    const AttentionShape shape{4, 2, 16};
    const int64_t kv_width = 32, q_width = 64, block_size = 4, n_blocks = 12;
    Tensor pool_keys = random_f32({n_blocks * block_size, kv_width}, rng, -50, 50);
    Tensor pool_values = random_f32({n_blocks * block_size, kv_width}, rng, -50, 50);
    const std::vector<std::vector<int32_t>> tables{{7, 2, 9}, {4, 0}, {11, 5, 1}};
    const std::vector<int64_t> first{9, 3, 0}, n_new{1, 4, 10};
    // The histories, written sequence by sequence.
    for (size_t s = 0; s < 3; ++s) {
        if (first[s] == 0) continue;
        const PagedSequence old{tables[s], 0, first[s]};
        kv_cache_write(random_f32({first[s], kv_width}, rng), random_f32({first[s], kv_width}, rng),
                       paged_tokens(std::span<const PagedSequence>(&old, 1)),
                       {pool_keys, pool_values, block_size});
    }
    Tensor q = random_f32({15, q_width}, rng), keys = random_f32({15, kv_width}, rng),
           values = random_f32({15, kv_width}, rng);
    auto copy = [](const Tensor& t) {
        Tensor c = Tensor::zeros(t.dtype(), t.shape());
        c.copy_from(t);
        return c;
    };
    const KvLayer alone{copy(pool_keys), copy(pool_values), block_size};
    Tensor expected = Tensor::zeros(DType::f32, {15, q_width});
    int64_t row = 0;
    for (size_t s = 0; s < 3; ++s) {
        const PagedSequence one{tables[s], first[s], n_new[s]};
        const PagedTokens tokens = paged_tokens(std::span<const PagedSequence>(&one, 1));
        kv_cache_write(keys.rows(row, n_new[s]), values.rows(row, n_new[s]), tokens, alone);
        Tensor out = expected.rows(row, n_new[s]);
        attention_paged(q.rows(row, n_new[s]), tokens, alone, shape, out);
        row += n_new[s];
    }
    std::vector<PagedSequence> batch;
    for (size_t s = 0; s < 3; ++s) batch.push_back({tables[s], first[s], n_new[s]});
    const PagedTokens tokens = paged_tokens(batch);
    const KvLayer together{pool_keys, pool_values, block_size};
    kv_cache_write(keys, values, tokens, together);
    Tensor got = Tensor::zeros(DType::f32, {15, q_width});
    attention_paged(q, tokens, together, shape, got);
    for (int64_t i = 0; i < got.numel(); ++i) {
        ASSERT_EQ(got.data<float>()[i], expected.data<float>()[i]) << "element " << i;
    }
}

// A decode step's tables say so (attention_with_prologue folds the cache write into the
// attention kernel only then): every sequence one new token, or none; a chunk of two is not.
TEST(Attention, PagedTokensKnowADecodeStep) {
    const std::vector<int32_t> a{3, 1}, b{0};
    const std::vector<PagedSequence> decode{{a, 5, 1}, {b, 0, 1}, {b, 2, 0}};
    const std::vector<PagedSequence> chunk{{a, 5, 1}, {b, 0, 2}};
    EXPECT_TRUE(paged_tokens(decode).one_token_per_sequence);
    EXPECT_FALSE(paged_tokens(chunk).one_token_per_sequence);
    // The device copy carries it, with the rest of the host knowledge.
    const PagedTokens moved = paged_tokens_to(paged_tokens(decode), Device::host());
    EXPECT_TRUE(moved.one_token_per_sequence);
    EXPECT_EQ(moved.max_context, 6);
}

TEST(AttentionDeathTest, ATableTooShortOrOutOfRangeIsABug) {
    std::mt19937 rng(44);
    Paged paged = scrambled_pool(8, 4, 8, rng);  // 2 blocks owned
    Tensor keys = random_f32({1, 8}, rng), values = random_f32({1, 8}, rng);
    // Position 8 needs a third block.
    EXPECT_DEATH(kv_cache_write(keys, values, paged.tokens(8, 1), paged.layer(4)),
                 "needs 3 blocks, its table has 2");
    paged.table[0] = 99;
    EXPECT_DEATH(kv_cache_write(keys, values, paged.tokens(0, 1), paged.layer(4)),
                 "block 0 of token 0's table is 99");
}

}  // namespace
}  // namespace fourbit
