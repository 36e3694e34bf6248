// One op suite for every compiled device: each case (shapes, dtypes, tolerance) is written once,
// its inputs made on the host, the CPU op run there as the reference, then the same op run on
// each device and compared. On a build without a GPU, or a machine without one (CI), the device
// cases skip with the reason. Tolerances say why they are what they are.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "nvfp4/quantize.h"
#include "ops/add.h"
#include "ops/attention.h"
#include "ops/attention_prologue.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/moe.h"
#include "ops/rms_norm.h"
#include "ops/rope.h"
#include "ops/top_k.h"
#include "support/bf16_tensors.h"
#include "tensor/cuda_memory.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {
namespace {

// bf16 keeps 8 significant bits: rounding an f32 to it moves it by at most 2^-9 relative.
constexpr double kBf16Rounding = 0x1p-9;

Tensor random_f32(Shape shape, std::mt19937& rng, float scale = 1.0f) {
    Tensor tensor = Tensor::zeros(DType::f32, std::move(shape));
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < tensor.numel(); ++i) tensor.data<float>()[i] = normal(rng);
    return tensor;
}

Tensor random_bf16(Shape shape, std::mt19937& rng, float scale = 1.0f) {
    Tensor tensor = Tensor::zeros(DType::bf16, std::move(shape));
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < tensor.numel(); ++i)
        tensor.data<uint16_t>()[i] = f32_to_bf16(normal(rng));
    return tensor;
}

using test_support::as_dtype;
using test_support::widened;

// NVFP4 weights quantized by the project's codec from random values with an outlier, so block
// scales spread far below the global range (small and subnormal e4m3 scales included).
LinearWeight random_nvfp4(int64_t n, int64_t k, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 0.05f);
    std::vector<float> w(n * k);
    for (float& value : w) value = normal(rng);
    w[5] = 3.0f;
    for (int64_t i = 0; i < 16; ++i) w[k + i] = 0.0f;  // an all-zero block
    NvFp4Matrix q = quantize_nvfp4(w, n, k, nvfp4_global_scale(checked_amax(w, "w")), "w");
    LinearWeight weight;
    weight.weight = Tensor::zeros(DType::u8, {n, k / 2});
    std::memcpy(weight.weight.data<uint8_t>(), q.packed.data(), q.packed.size());
    weight.block_scale = Tensor::zeros(DType::f8_e4m3, {n, k / 16});
    std::memcpy(weight.block_scale.data<uint8_t>(), q.block_scales.data(), q.block_scales.size());
    weight.global_scale = q.global_scale;
    return weight;
}

// NVFP4 weights of random bytes, fast enough for MiniMax-sized matrices: every code, scales from
// e4m3 subnormals up to 2^3 with some zero blocks, a global scale.
LinearWeight random_nvfp4_bytes(int64_t n, int64_t k, std::mt19937& rng) {
    LinearWeight weight;
    weight.weight = Tensor::zeros(DType::u8, {n, k / 2});
    for (int64_t i = 0; i < weight.weight.numel(); ++i)
        weight.weight.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
    weight.block_scale = Tensor::zeros(DType::f8_e4m3, {n, k / 16});
    for (int64_t i = 0; i < weight.block_scale.numel(); ++i) {
        const uint32_t bits = rng();
        // Exponent field 0..10 (subnormals to 2^3), any mantissa; one block in 64 zero.
        weight.block_scale.data<uint8_t>()[i] =
            bits % 64 == 0 ? 0
                           : static_cast<uint8_t>((((bits >> 8) % 11) << 3) | ((bits >> 16) & 7));
    }
    weight.global_scale = 0.01f;
    return weight;
}

// The weight's value [r, c] in double (dense or NVFP4 in checkpoint layout).
double weight_at(const LinearWeight& weight, int64_t r, int64_t c) {
    const Tensor& w = weight.weight;
    if (w.dtype() == DType::f32) return w.data<float>()[r * w.dim(1) + c];
    if (w.dtype() == DType::bf16) return bf16_to_f32(w.data<uint16_t>()[r * w.dim(1) + c]);
    const int64_t k = weight.cols();
    const uint8_t code = (w.data<uint8_t>()[r * k / 2 + c / 2] >> (4 * (c % 2))) & 0xf;
    static constexpr double kMagnitudes[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    const double value = (code & 8 ? -1.0 : 1.0) * kMagnitudes[code & 7];
    return value * f8_e4m3_to_f32(weight.block_scale.data<uint8_t>()[r * k / 16 + c / 16]) *
           weight.global_scale;
}

// sum_k |W[r, k] x[t, k]| for every output: the scale of each output's rounding error.
std::vector<double> absolute_products(const Tensor& x, const LinearWeight& weight) {
    const int64_t m = x.dim(0), n = weight.rows(), k = weight.cols();
    std::vector<double> sums(m * n, 0.0);
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < k; ++c) {
            const double w = std::fabs(weight_at(weight, r, c));
            for (int64_t t = 0; t < m; ++t)
                sums[t * n + r] += w * std::fabs(x.data<float>()[t * k + c]);
        }
    }
    return sums;
}

class DeviceOps : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        if (GetParam() == "cuda") {
            if (!cuda_compiled()) GTEST_SKIP() << "built without the CUDA backend";
            if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
            device_ = Device::cuda(0);
        }
    }
    // A copy of a host tensor on the device under test.
    Tensor on_device(const Tensor& host) const { return host.to(device_); }
    static Tensor to_host(const Tensor& tensor) { return tensor.to(Device::host()); }
    // Poisoned (NaN) output on the device: elements the op fails to write show up.
    Tensor poisoned(Shape shape) const {
        Tensor host = Tensor::zeros(DType::f32, std::move(shape));
        for (int64_t i = 0; i < host.numel(); ++i) host.data<float>()[i] = std::nanf("");
        return on_device(host);
    }
    Tensor poisoned_bf16(Shape shape) const {
        return on_device(as_dtype(to_host(poisoned(std::move(shape))), DType::bf16));
    }
    // y = x W^T on the device under test for a bf16 `weight` and for a matrix of its first
    // `few` rows: y within `relative` x sum |w x| (+ a floor) of the host's, and its first `few`
    // rows bitwise the smaller matrix's (a row's sum does not depend on the rows beside it).
    // Returns y on the host.
    Tensor expect_head_rows_bitwise(const Tensor& x, const LinearWeight& weight, int64_t few,
                                    double relative, const char* what) const;
    // moe_router of m random rows against add_rms_norm, linear and moe_route run in turn on
    // the device under test: bitwise the same x, h, logits, ids and weights, and (not vacuous)
    // k distinct experts a row in ascending order with weights summing to 1. `norm_weight` and
    // `bias` (or none) on the host; `where` names the case.
    void expect_router_as_its_three_ops(int64_t m, const LinearWeight& device_router,
                                        const Tensor& norm_weight, const Tensor& bias, int64_t k,
                                        std::mt19937& rng, const std::string& where) const {
        auto bits = [](const Tensor& t) {
            const Tensor host = t.to(Device::host());
            const auto* begin = static_cast<const uint8_t*>(host.raw());
            return std::vector<uint8_t>(begin, begin + host.size_bytes());
        };
        const int64_t hidden = device_router.cols(), n_experts = device_router.rows();
        const Tensor x = random_f32({m, hidden}, rng), r = random_f32({m, hidden}, rng);
        const Tensor w = on_device(norm_weight);
        const Tensor b = bias.defined() ? on_device(bias) : Tensor();
        Tensor ex = on_device(x), eh = poisoned({m, hidden}), elogits = poisoned({m, n_experts}),
               eids = Tensor::zeros(DType::i32, {m, k}, device_), eweights = poisoned({m, k});
        add_rms_norm(ex, on_device(r), w, 1e-6f, eh);
        linear(eh, device_router, elogits);
        moe_route(elogits, b, k, eids, eweights);
        Tensor gx = on_device(x), gh = poisoned({m, hidden}), glogits = poisoned({m, n_experts}),
               gids = Tensor::zeros(DType::i32, {m, k}, device_), gweights = poisoned({m, k});
        moe_router(gx, on_device(r), w, 1e-6f, device_router, b, k, gh, glogits, gids, gweights);
        EXPECT_EQ(bits(gx), bits(ex)) << "x, " << where;
        EXPECT_EQ(bits(gh), bits(eh)) << "h, " << where;
        EXPECT_EQ(bits(glogits), bits(elogits)) << "logits, " << where;
        EXPECT_EQ(bits(gids), bits(eids)) << "ids, " << where;
        EXPECT_EQ(bits(gweights), bits(eweights)) << "weights, " << where;
        // Asked for h rounded to bf16 too (the NVFP4 experts' input): the same op otherwise.
        Tensor rx = on_device(x), rh = poisoned({m, hidden}), rounded = poisoned_bf16({m, hidden}),
               rlogits = poisoned({m, n_experts}),
               rids = Tensor::zeros(DType::i32, {m, k}, device_), rweights = poisoned({m, k});
        moe_router(rx, on_device(r), w, 1e-6f, device_router, b, k, rh, rlogits, rids, rweights,
                   &rounded);
        EXPECT_EQ(bits(rounded), bits(as_dtype(to_host(eh), DType::bf16)))
            << "h rounded, " << where;
        EXPECT_EQ(bits(rx), bits(ex)) << "x beside h rounded, " << where;
        EXPECT_EQ(bits(rh), bits(eh)) << "h beside h rounded, " << where;
        EXPECT_EQ(bits(rids), bits(eids)) << "ids beside h rounded, " << where;
        EXPECT_EQ(bits(rweights), bits(eweights)) << "weights beside h rounded, " << where;
        const Tensor ids = to_host(gids), weights = to_host(gweights);
        for (int64_t t = 0; t < m; ++t) {
            double total = 0;
            for (int64_t j = 0; j < k; ++j) {
                total += weights.data<float>()[t * k + j];
                if (j > 0) {
                    EXPECT_LT(ids.data<int32_t>()[t * k + j - 1], ids.data<int32_t>()[t * k + j])
                        << where;
                }
            }
            EXPECT_NEAR(total, 1.0, 1e-5) << where;
        }
    }
    Device device_ = Device::host();
};

// |got - expected| <= bound[i] for every element, NaN never passing.
void expect_within(const Tensor& got, const Tensor& expected, const std::vector<double>& bound,
                   const char* what) {
    ASSERT_EQ(got.shape(), expected.shape());
    int64_t reported = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
        const double g = got.data<float>()[i], e = expected.data<float>()[i];
        if (!(std::fabs(g - e) <= bound[i]) && reported++ < 5) {
            ADD_FAILURE() << what << " [" << i << "]: " << g << " vs " << e << " (bound "
                          << bound[i] << ")";
        }
    }
}

void expect_within(const Tensor& got, const Tensor& expected, double bound, const char* what) {
    expect_within(got, expected, std::vector<double>(got.numel(), bound), what);
}

Tensor DeviceOps::expect_head_rows_bitwise(const Tensor& x, const LinearWeight& weight, int64_t few,
                                           double relative, const char* what) const {
    const int64_t m = x.dim(0), n = weight.rows();
    LinearWeight head;
    head.weight = weight.weight.rows(0, few).to(Device::host());
    Tensor expected = Tensor::zeros(DType::f32, {m, n});
    linear(x, weight, expected);
    Tensor y = poisoned({m, n}), y_head = poisoned({m, few});
    linear(on_device(x), linear_weight_to(weight, device_), y);
    linear(on_device(x), linear_weight_to(head, device_), y_head);
    std::vector<double> bound = absolute_products(x, weight);
    for (double& b : bound) b = b * relative + 1e-30;
    const Tensor got = to_host(y), got_head = to_host(y_head);
    expect_within(got, expected, bound, what);
    for (int64_t t = 0; t < m && !HasFailure(); ++t) {
        for (int64_t r = 0; r < few && !HasFailure(); ++r) {
            EXPECT_EQ(std::bit_cast<uint32_t>(got.data<float>()[t * n + r]),
                      std::bit_cast<uint32_t>(got_head.data<float>()[t * few + r]))
                << what << ": " << m << " tokens, row " << r;
        }
    }
    return got;
}

TEST_P(DeviceOps, Add) {
    std::mt19937 rng(1);
    Tensor x = random_f32({3, 1001}, rng), y = random_f32({3, 1001}, rng);
    Tensor expected = x.to(Device::host());
    add(expected, y);
    Tensor dx = on_device(x);
    add(dx, on_device(y));
    expect_within(to_host(dx), expected, 0.0, "add");  // one f32 addition: bit-identical
}

TEST_P(DeviceOps, RmsNormMiniMaxQkWidthsBothWeightTypes) {
    std::mt19937 rng(2);
    // One rounding of the scale (both sum in double) and two f32 products per element: the
    // devices may differ only where the double sums' order changes the last bit of the scale.
    for (int64_t d : {3072, 6144, 1000}) {
        Tensor x = random_f32({5, d}, rng, 3.0f);
        for (const Tensor& w : {random_f32({d}, rng), random_bf16({d}, rng)}) {
            Tensor expected = Tensor::zeros(DType::f32, x.shape());
            rms_norm(x, w, 1e-6f, expected);
            Tensor y = poisoned(x.shape());
            rms_norm(on_device(x), on_device(w), 1e-6f, y);
            std::vector<double> bound(x.numel());
            for (int64_t i = 0; i < x.numel(); ++i)
                bound[i] = 4e-7 * std::fabs(expected.data<float>()[i]);
            expect_within(to_host(y), expected, bound, "rms_norm");
        }
    }
}

TEST_P(DeviceOps, RmsNormInPlace) {
    std::mt19937 rng(3);
    Tensor x = random_f32({2, 256}, rng), w = random_f32({256}, rng);
    Tensor expected = Tensor::zeros(DType::f32, x.shape());
    rms_norm(x, w, 1e-6f, expected);
    Tensor dx = on_device(x);
    rms_norm(dx, on_device(w), 1e-6f, dx);
    std::vector<double> bound(x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) bound[i] = 4e-7 * std::fabs(expected.data<float>()[i]);
    expect_within(to_host(dx), expected, bound, "rms_norm in place");
}

TEST_P(DeviceOps, RopePartialNeoxMiniMaxShape) {
    std::mt19937 rng(4);
    const RopeShape shape{48, 128, 64, 5e6};
    const std::vector<int32_t> positions = {0, 1, 17, 4095, 200000};
    Tensor x = random_f32({5, 48 * 128}, rng);
    Tensor expected = x.to(Device::host());
    rope_neox(expected, positions, shape);
    // Same f32 angles and cos/sin in double on both: at most an ulp of cos/sin apart (a double
    // rounded twice), so |error| <= 2^-23 (|a| + |b|) per rotated element.
    Tensor dx = on_device(x);
    Tensor device_positions =
        Tensor::borrow(DType::i32, {5}, positions.data(), nullptr).to(device_);
    rope_neox(dx, device_positions, shape);
    expect_within(to_host(dx), expected, 1e-6, "rope");
}

TEST_P(DeviceOps, AddRmsNormEqualsAddThenNorm) {
    std::mt19937 rng(17);
    for (bool bf16_weight : {false, true}) {
        Tensor x = random_f32({3, 3072}, rng), r = random_f32({3, 3072}, rng);
        Tensor w = bf16_weight ? random_bf16({3072}, rng) : random_f32({3072}, rng);
        Tensor expected_x = x.to(Device::host()), expected = Tensor::zeros(DType::f32, {3, 3072});
        add(expected_x, r);
        rms_norm(expected_x, w, 1e-6f, expected);
        Tensor dx = on_device(x), dy = poisoned({3, 3072});
        add_rms_norm(dx, on_device(r), on_device(w), 1e-6f, dy);
        // The sum is exact in both (one f32 add); the norm as RmsNormInPlace bounds it.
        expect_within(to_host(dx), expected_x, 0.0, "add_rms_norm residual");
        std::vector<double> bound(expected.numel());
        for (int64_t i = 0; i < expected.numel(); ++i)
            bound[i] = 4e-7 * std::fabs(expected.data<float>()[i]);
        expect_within(to_host(dy), expected, bound, "add_rms_norm output");
    }
}

// Both norms written as bf16 (the input an NVFP4 linear reads, ops/linear.h) are their f32
// outputs on the same device rounded to nearest even, bitwise: handing the row over in bf16
// changes nothing the linear computes. Rows in registers (3,072, 6,144) and the loop kernels'
// (10,240 > 8 x 1,024).
TEST_P(DeviceOps, NormsWrittenAsBf16AreTheirF32OutputsRounded) {
    std::mt19937 rng(41);
    for (int64_t d : {3072, 6144, 10240}) {
        const Tensor x = random_f32({3, d}, rng, 2.0f), r = random_f32({3, d}, rng);
        const Tensor w = on_device(random_bf16({d}, rng));
        Tensor f32 = poisoned({3, d}), bf16 = on_device(Tensor::zeros(DType::bf16, {3, d}));
        rms_norm(on_device(x), w, 1e-6f, f32);
        rms_norm(on_device(x), w, 1e-6f, bf16);
        const std::string width = std::to_string(d);
        expect_within(widened(to_host(bf16)), widened(as_dtype(to_host(f32), DType::bf16)), 0.0,
                      ("rms_norm to bf16, " + width).c_str());
        Tensor x1 = on_device(x), x2 = on_device(x), r_device = on_device(r);
        add_rms_norm(x1, r_device, w, 1e-6f, f32);
        add_rms_norm(x2, r_device, w, 1e-6f, bf16);
        expect_within(to_host(x2), to_host(x1), 0.0, ("add_rms_norm residual, " + width).c_str());
        expect_within(widened(to_host(bf16)), widened(as_dtype(to_host(f32), DType::bf16)), 0.0,
                      ("add_rms_norm to bf16, " + width).c_str());
        // Both at once (the MoE's h: its router reads f32, its NVFP4 experts bf16).
        Tensor x3 = on_device(x), both_f32 = poisoned({3, d});
        Tensor both_bf16 = on_device(as_dtype(to_host(poisoned({3, d})), DType::bf16));
        add_rms_norm(x3, r_device, w, 1e-6f, both_f32, &both_bf16);
        expect_within(to_host(x3), to_host(x1), 0.0, ("both outputs' residual, " + width).c_str());
        expect_within(to_host(both_f32), to_host(f32), 0.0,
                      ("both outputs' f32, " + width).c_str());
        expect_within(widened(to_host(both_bf16)), widened(to_host(bf16)), 0.0,
                      ("both outputs' bf16, " + width).c_str());
    }
}

// The fused prologue against the five host ops: QK-norm, RoPE, cache write of a batch of two
// sequences over a scrambled pool.
TEST_P(DeviceOps, AttentionPrologueEqualsItsFiveOps) {
    std::mt19937 rng(18);
    const RopeShape q_rope{48, 128, 64, 5e6}, k_rope{8, 128, 64, 5e6};
    const int64_t q_width = 48 * 128, kv_width = 8 * 128, block_size = 16, n_blocks = 9;
    const std::vector<int32_t> table_a{4, 0, 7}, table_b{2, 8};
    const std::vector<PagedSequence> sequences{{table_a, 40, 1}, {table_b, 0, 20}};
    const PagedTokens tokens = paged_tokens(sequences);
    for (bool bf16_weight : {false, true}) {
        for (DType pool_dtype : {DType::f32, DType::bf16}) {
            Tensor q = random_f32({21, q_width}, rng), k = random_f32({21, kv_width}, rng),
                   v = random_f32({21, kv_width}, rng);
            QkNorm norm{bf16_weight ? random_bf16({q_width}, rng) : random_f32({q_width}, rng),
                        bf16_weight ? random_bf16({kv_width}, rng) : random_f32({kv_width}, rng),
                        1e-6f};
            Tensor pool_keys =
                as_dtype(random_f32({n_blocks * block_size, kv_width}, rng, 50.0f), pool_dtype);
            Tensor pool_values =
                as_dtype(random_f32({n_blocks * block_size, kv_width}, rng, 50.0f), pool_dtype);
            Tensor eq = q.to(Device::host()), ek = k.to(Device::host());
            KvLayer expected_pool{pool_keys.to(Device::host()), pool_values.to(Device::host()),
                                  block_size};
            attention_prologue(eq, ek, v, norm, q_rope, k_rope, tokens, expected_pool);
            Tensor dq = on_device(q), dk = on_device(k);
            KvLayer pool{on_device(pool_keys), on_device(pool_values), block_size};
            attention_prologue(dq, dk, on_device(v),
                               {on_device(norm.q_weight), on_device(norm.k_weight), norm.eps},
                               q_rope, k_rope, paged_tokens_to(tokens, device_), pool);
            // The norm's scale to 4e-7 relative (RmsNormInPlace), then the rotation to 2^-23 of
            // its inputs (RopePartialNeoxMiniMaxShape): within 1e-6 x (1 + |value|) together.
            auto relative = [](const Tensor& expected) {
                std::vector<double> bound(expected.numel());
                for (int64_t i = 0; i < expected.numel(); ++i)
                    bound[i] = 1e-6 * (1 + std::fabs(expected.data<float>()[i]));
                return bound;
            };
            expect_within(to_host(dq), eq, relative(eq), "prologue q");
            expect_within(to_host(dk), ek, relative(ek), "prologue k");
            // A bf16 pool may round a key the other way where the two differ across a rounding
            // boundary: one bf16 step, 2^-8 relative, more.
            const Tensor expected_keys = widened(expected_pool.keys);
            std::vector<double> key_bound = relative(expected_keys);
            if (pool_dtype == DType::bf16) {
                for (int64_t i = 0; i < expected_keys.numel(); ++i) {
                    key_bound[i] += 0x1p-8 * std::fabs(expected_keys.data<float>()[i]);
                }
            }
            expect_within(widened(to_host(pool.keys)), expected_keys, key_bound,
                          "prologue key pool");
            expect_within(widened(to_host(pool.values)), widened(expected_pool.values), 0.0,
                          "prologue value pool");
        }
    }
}

// attention_with_prologue on a decode step (one token per sequence) over a bf16 pool: on CUDA
// one kernel, whose outputs and pool must be bitwise those of the prologue and attention ops it
// replaces, which the tests above hold against the host. The fused kernel leaves q and k as
// they were (the ops norm and rotate them in place): that is how the test knows it ran.
void run_folded_prologue_case(const AttentionShape& shape, int64_t rotary_dim,
                              const std::vector<int64_t>& contexts, Device device,
                              std::mt19937& rng) {
    const int64_t q_width = shape.n_heads * shape.head_dim;
    const int64_t kv_width = shape.n_kv_heads * shape.head_dim, block_size = 16;
    const RopeShape q_rope{shape.n_heads, shape.head_dim, rotary_dim, 5e6};
    const RopeShape k_rope{shape.n_kv_heads, shape.head_dim, rotary_dim, 5e6};
    int64_t n_blocks = 1;
    for (int64_t context : contexts) n_blocks += (context + block_size - 1) / block_size;
    std::vector<int32_t> ids(n_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<std::vector<int32_t>> tables;
    int64_t next = 0;
    for (int64_t context : contexts) {
        const int64_t blocks = (context + block_size - 1) / block_size;
        tables.emplace_back(ids.begin() + next, ids.begin() + next + blocks);
        next += blocks;
    }
    std::vector<PagedSequence> sequences;
    for (size_t i = 0; i < contexts.size(); ++i)
        sequences.push_back({tables[i], contexts[i] - 1, 1});
    const PagedTokens tokens = paged_tokens_to(paged_tokens(sequences), device);
    ASSERT_TRUE(tokens.one_token_per_sequence);
    PagedTokens two_ops = tokens;
    two_ops.one_token_per_sequence = false;
    const int64_t n = std::ssize(contexts);
    const Tensor q = random_f32({n, q_width}, rng), k = random_f32({n, kv_width}, rng);
    const Tensor v = random_f32({n, kv_width}, rng);
    const Tensor keys = random_bf16({n_blocks * block_size, kv_width}, rng);
    const Tensor values = random_bf16({n_blocks * block_size, kv_width}, rng, 0.5f);
    for (bool bf16_weight : {false, true}) {
        const QkNorm norm{
            (bf16_weight ? random_bf16({q_width}, rng) : random_f32({q_width}, rng)).to(device),
            (bf16_weight ? random_bf16({kv_width}, rng) : random_f32({kv_width}, rng)).to(device),
            1e-6f};
        auto run = [&](const PagedTokens& step, Tensor& dq, KvLayer& pool,
                       DType out_dtype = DType::f32) {
            dq = q.to(device);
            Tensor dk = k.to(device), out = Tensor::zeros(out_dtype, {n, q_width}, device);
            pool = {keys.to(device), values.to(device), block_size};
            attention_with_prologue(dq, dk, v.to(device), norm, q_rope, k_rope, step, pool, shape,
                                    out);
            return out.to(Device::host());
        };
        Tensor fused_q, ops_q;
        KvLayer fused_pool, ops_pool;
        const Tensor fused = run(tokens, fused_q, fused_pool);
        const Tensor expected = run(two_ops, ops_q, ops_pool);
        expect_within(fused_q.to(Device::host()), q, 0.0, "the fused kernel's q, untouched");
        expect_within(fused, expected, 0.0, "attention_with_prologue");
        // Written as bf16 (an NVFP4 o_proj's input): the same outputs rounded, bitwise.
        Tensor bf16_q;
        KvLayer bf16_pool;
        expect_within(widened(run(tokens, bf16_q, bf16_pool, DType::bf16)),
                      widened(as_dtype(fused, DType::bf16)), 0.0,
                      "attention_with_prologue to bf16");
        for (auto [got, want, what] :
             {std::tuple{&fused_pool.keys, &ops_pool.keys, "key pool"},
              std::tuple{&fused_pool.values, &ops_pool.values, "value pool"}}) {
            expect_within(widened(got->to(Device::host())), widened(want->to(Device::host())), 0.0,
                          what);
        }
    }
}

TEST_P(DeviceOps, AttentionWithPrologueFoldedIntoDecodeEqualsItsOps) {
    if (device_.is_host()) GTEST_SKIP() << "the host runs the two ops: nothing to learn here";
    std::mt19937 rng(19);
    // MiniMax-M2's heads: the first position, the last and first of a 64-position step, a split
    // context (16 splits at 1,000) in a batch.
    run_folded_prologue_case({48, 8, 128}, 64, {1, 64, 65, 300, 1000}, device_, rng);
    // A group of 8, head_dim 64 with half of it rotating; every dimension rotating.
    run_folded_prologue_case({16, 2, 64}, 32, {3, 129}, device_, rng);
    run_folded_prologue_case({8, 4, 32}, 32, {17}, device_, rng);
}

TEST_P(DeviceOps, EmbeddingRowsAreCopiedExactly) {
    std::mt19937 rng(5);
    const std::vector<int32_t> ids = {3, 0, 99, 3};
    for (const Tensor& table : {random_f32({100, 256}, rng), random_bf16({100, 256}, rng)}) {
        Tensor expected = Tensor::zeros(DType::f32, {4, 256});
        embedding(ids, table, expected);
        Tensor out = poisoned({4, 256});
        embedding(Tensor::borrow(DType::i32, {4}, ids.data(), nullptr).to(device_),
                  on_device(table), out);
        expect_within(to_host(out), expected, 0.0, "embedding");  // widening is exact
    }
}

// Each row's k largest values, largest first, equals by lower index (std::partial_sort with
// that order, computed here), at a vocabulary's width with ties across the CUDA kernels'
// slices and a tie of a whole row; ids all -1 for rows with a NaN or an infinity.
TEST_P(DeviceOps, TopKRowsLargestFirstEqualsByIndexNonFiniteMarked) {
    std::mt19937 rng(25);
    const int64_t n = 200064;
    Tensor x = random_f32({6, n}, rng);
    float* v = x.data<float>();
    v[1 * n + 777] = v[1 * n + 150000] = v[1 * n + 4096] = 9.0f;  // ties in three slices
    v[2 * n + n - 1] = 9.0f;                                      // the last element
    v[3 * n + 5] = std::nanf("");
    v[4 * n + 9] = -INFINITY;
    for (int64_t i = 0; i < n; ++i) v[5 * n + i] = -2.0f;  // all equal: ids 0, 1, 2, ...
    for (int64_t k : {1, 40, 64}) {
        Tensor values = Tensor::zeros(DType::f32, {6, k}, device_);
        Tensor ids = Tensor::zeros(DType::i32, {6, k}, device_);
        top_k_rows(on_device(x), k, values, ids);
        const Tensor got_values = to_host(values), got_ids = to_host(ids);
        for (int64_t r = 0; r < 6; ++r) {
            const float* row = v + r * n;
            const int32_t* row_ids = got_ids.data<int32_t>() + r * k;
            if (!std::all_of(row, row + n, [](float f) { return std::isfinite(f); })) {
                for (int64_t j = 0; j < k; ++j) EXPECT_EQ(row_ids[j], -1) << "row " << r;
                continue;
            }
            std::vector<int32_t> order(n);
            std::iota(order.begin(), order.end(), 0);
            std::partial_sort(order.begin(), order.begin() + k, order.end(),
                              [&](int32_t a, int32_t b) {
                                  return row[a] > row[b] || (row[a] == row[b] && a < b);
                              });
            for (int64_t j = 0; j < k; ++j) {
                ASSERT_EQ(row_ids[j], order[j]) << "k " << k << " row " << r << " place " << j;
                EXPECT_EQ(got_values.data<float>()[r * k + j], row[order[j]]);
            }
        }
        EXPECT_EQ(got_ids.data<int32_t>()[1 * k], 777);
        EXPECT_EQ(got_ids.data<int32_t>()[2 * k], n - 1);
        EXPECT_EQ(got_ids.data<int32_t>()[5 * k + k - 1], k - 1);
    }
}

TEST_P(DeviceOps, LinearDenseWeights) {
    std::mt19937 rng(6);
    // k = 520: the exact GEMV's 256-wide vector steps plus a tail of 8.
    for (int64_t m : {1, 5, 16, 17, 33, 65}) {
        Tensor x = random_f32({m, 520}, rng);
        for (DType dtype : {DType::f32, DType::bf16}) {
            LinearWeight weight;
            weight.weight = dtype == DType::f32 ? random_f32({384, 520}, rng, 0.05f)
                                                : random_bf16({384, 520}, rng, 0.05f);
            Tensor expected = Tensor::zeros(DType::f32, {m, 384});
            linear(x, weight, expected);
            Tensor y = poisoned({m, 384});
            linear(on_device(x), linear_weight_to(weight, device_), y);
            // f32 x (always on the host; on CUDA for these small weights at any count: the
            // f32-x GEMV up to 64 tokens, and from 65 an f32 cuBLAS GEMM for f32 weights): only
            // the summation order differs, |error| <= 2 gamma_k sum|w x|, k = 520. A bf16 weight
            // from 65 tokens on CUDA: x split exactly into three bf16 parts, the 3k exact products
            // summed on the tensor cores in f32, whose adds may truncate (2^-23 each).
            const bool split = device_.is_cuda() && dtype == DType::bf16 && m > 64;
            const double relative = split ? 2.0 * 3 * 520 * 0x1p-23 : 2.0 * 520 * 0x1p-24;
            std::vector<double> bound = absolute_products(x, weight);
            for (double& b : bound) b = b * relative + 1e-30;
            expect_within(to_host(y), expected, bound,
                          dtype == DType::f32 ? "linear f32" : "linear bf16");
        }
    }
}

// A bf16 weight of many rows, below a vocabulary's (k = 520: not the split-mma GEMV's either):
// on CUDA at 2+ tokens the exact GEMV gives a warp several rows (8 up to 8 tokens, 4 beyond),
// which share its x loads; each row's sum in the same order as with one row a warp, so its
// first rows are bitwise those of a small matrix of the same rows (384: one row a warp). 32,771
// rows: the last warp has three.
TEST_P(DeviceOps, LinearManyBf16RowsEqualFewRowsBitwise) {
    std::mt19937 rng(23);
    const int64_t k = 520;
    LinearWeight weight;
    weight.weight = random_bf16({32771, k}, rng, 0.05f);
    for (int64_t m : {1, 2, 8, 17}) {
        expect_head_rows_bitwise(random_f32({m, k}, rng), weight, 384, 2.0 * k * 0x1p-24,
                                 "linear, many bf16 rows");
    }
}

// A bf16 weight of a vocabulary's rows at 2 to 64 tokens with k a multiple of 64 (an lm_head at
// batched decode): on CUDA the tensor-core GEMV of x split exactly in three bf16 parts
// (ops/cuda/split_mma_gemv.h), within the bound of an f32 sum of 3k exact products whose adds
// may truncate. And bitwise: a token's row of y does not depend on the rows beside its own (a
// matrix of the first 65,536 rows; 65,540: the last stripe has four) nor, on CUDA, on the
// tokens beside it within one form of the kernel (2-16 tokens, whole 128-byte lines a chunk;
// 17-64, half lines: each sums in its own order). A short k (128) keeps the host's reference
// quick.
TEST_P(DeviceOps, LinearManyBf16RowsAtBatchedDecode) {
    std::mt19937 rng(29);
    const int64_t n = 65540, k = 128;
    LinearWeight weight;
    weight.weight = random_bf16({n, k}, rng, 0.05f);
    const Tensor x = random_f32({64, k}, rng);
    const double relative = device_.is_cuda() ? 2.0 * 3 * k * 0x1p-23 : 2.0 * k * 0x1p-24;
    Tensor token0_first[2];  // token 0's row at the first count of each form
    for (int64_t m : {2, 7, 8, 9, 16, 17, 33, 64}) {
        const Tensor got =
            expect_head_rows_bitwise(x.rows(0, m).to(Device::host()), weight, 65536, relative,
                                     "linear, a vocabulary's rows, batched");
        if (HasFailure()) return;
        Tensor& first = token0_first[m > 16 ? 1 : 0];
        if (!first.defined()) first = got.rows(0, 1).to(Device::host());
        // (The host's kernels block tokens by the count: only CUDA's path promises this.)
        for (int64_t r = 0; device_.is_cuda() && r < n; ++r) {
            ASSERT_EQ(std::bit_cast<uint32_t>(got.data<float>()[r]),
                      std::bit_cast<uint32_t>(first.data<float>()[r]))
                << m << " tokens, token 0, row " << r;
        }
    }
}

// A bf16 weight above 8 MiB: the f32-x GEMV up to 64 tokens, cuBLAS with x rounded to bf16 beyond.
TEST_P(DeviceOps, LinearLargeBf16WeightsBothPaths) {
    std::mt19937 rng(16);
    LinearWeight weight;
    weight.weight = random_bf16({4160, 1024}, rng, 0.03f);
    const LinearWeight placed = linear_weight_to(weight, device_);
    for (int64_t m : {3, 64, 65}) {
        Tensor x = random_f32({m, 1024}, rng);
        Tensor expected = Tensor::zeros(DType::f32, {m, 4160});
        linear(x, weight, expected);
        Tensor y = poisoned({m, 4160});
        linear(on_device(x), placed, y);
        const bool rounded = device_.is_cuda() && m > 64;
        const double relative = (rounded ? kBf16Rounding : 0.0) + 2.0 * 1024 * 0x1p-24;
        std::vector<double> bound = absolute_products(x, weight);
        for (double& b : bound) b = b * relative + 1e-30;
        expect_within(to_host(y), expected, bound, "linear large bf16");
    }
}

TEST_P(DeviceOps, LinearNvfp4EveryTokenCountUpToTwoBlocks) {
    std::mt19937 rng(7);
    // Exact dequantization on both; the device rounds x to bf16 for the tensor cores (2^-9
    // relative per element) and both accumulate in f32 in different orders (2 gamma_k).
    const int64_t n = 256, k = 1024;
    LinearWeight weight = random_nvfp4(n, k, rng);
    LinearWeight placed = linear_weight_to(weight, device_);
    for (int64_t m : {1, 2, 3, 4, 7, 8, 9, 16, 17, 35}) {
        Tensor x = random_f32({m, k}, rng);
        Tensor expected = Tensor::zeros(DType::f32, {m, n});
        linear(x, weight, expected);
        Tensor y = poisoned({m, n});
        linear(on_device(x), placed, y);
        const double relative = (device_.is_cuda() ? kBf16Rounding : 0.0) + 2.0 * k * 0x1p-24;
        std::vector<double> bound = absolute_products(x, weight);
        for (double& b : bound) b = b * relative + 1e-30;
        expect_within(to_host(y), expected, bound, ("nvfp4 m=" + std::to_string(m)).c_str());
    }
}

// A token's outputs do not depend on whether it is decoded alone or beside other tokens (a
// speculative verification, a batch): CUDA stages one token's x and 2-8 tokens' x by different
// loops (8 fragments a thread in flight for the latter), to the same bf16 fragments, and 9-16
// tokens' in two stripes a CTA of the one-token kernel's warps a stripe; each sums in the same
// order. Bitwise, at a grid of 128 stripes (8-warp CTAs) and at M2's stacked q/k/v (6-warp CTAs),
// at 2 and 12 tokens, and within the f32 bound of the host's.
TEST_P(DeviceOps, LinearNvfp4OneTokenEqualsManyTokensBitwise) {
    if (device_.is_host()) GTEST_SKIP() << "the staging loops are CUDA's";
    std::mt19937 rng(9);
    const int64_t k = 3072;
    for (int64_t n : {int64_t{2048}, int64_t{8192}}) {  // 128 and 512 stripes
        const LinearWeight weight = random_nvfp4(n, k, rng);
        const LinearWeight placed = linear_weight_to(weight, device_);
        const Tensor x = random_f32({1, k}, rng);
        Tensor one = poisoned({1, n});
        linear(on_device(x), placed, one);
        const Tensor got_one = to_host(one);
        for (int64_t m : {2, 12}) {
            Tensor copies = Tensor::zeros(DType::f32, {m, k});
            for (int64_t row = 0; row < m; ++row) {
                std::copy_n(x.data<float>(), k, copies.data<float>() + row * k);
            }
            Tensor many = poisoned({m, n});
            linear(on_device(copies), placed, many);
            const Tensor got_many = to_host(many);
            for (int64_t row = 0; row < m; ++row) {
                EXPECT_EQ(std::memcmp(got_one.data<float>(), got_many.data<float>() + row * n,
                                      static_cast<size_t>(n) * sizeof(float)),
                          0)
                    << n << " rows: token " << row << " of " << m << " differs from the one token";
            }
        }
        Tensor expected = Tensor::zeros(DType::f32, {1, n});
        linear(x, weight, expected);
        std::vector<double> bound = absolute_products(x, weight);
        for (double& b : bound) b = b * (kBf16Rounding + 2.0 * k * 0x1p-24) + 1e-30;
        expect_within(got_one, expected, bound, "nvfp4 one token");
    }
}

// A linear given x as bf16 gives what it gives for the same values in f32, bitwise: NVFP4 tiles
// round x to bf16 themselves (the GEMV staging bf16 rows: M2's o_proj and stacked q/k/v shapes
// in whole chunks, from 2 tokens four k-tiles a thread in flight, 3 tokens' rows leaving the
// last batch part empty; two stripes a CTA, the stacked q/k/v's at 1-16 tokens and o_proj's at
// 9-16, 12 tokens' second token tile partly empty; o_proj's at 4 and 8 tokens on Hopper by
// clusters' multicast copies and ldmatrix where f32 rows are staged CTA by CTA, a small grid in
// guarded chunks; reading them through L1 where 16 rows of 6,144 are too wide to stage; the GEMM
// from 33 tokens; q, k and v stacked), and every other weight is fed x widened to f32, exactly. So
// producers may hand NVFP4 linears bf16 rows (linear_activation_dtype) without changing a result.
TEST_P(DeviceOps, LinearBf16ActivationsEqualTheSameValuesInF32) {
    std::mt19937 rng(43);
    struct Case {
        int64_t n, k;
        std::vector<int64_t> tokens;
        bool nvfp4;
    };
    auto expect_same = [&](const Tensor& from_bf16, const Tensor& from_f32,
                           const std::string& what) {
        expect_within(to_host(from_bf16), to_host(from_f32), 0.0, what.c_str());
    };
    for (const Case& c :
         {Case{3072, 6144, {1, 2, 4, 8, 12}, true}, Case{8192, 3072, {1, 3, 8, 12}, true},
          Case{256, 3072, {1, 2, 16, 40}, true}, Case{256, 6144, {1, 16}, true},
          Case{64, 512, {1, 5}, false}}) {
        LinearWeight host;
        if (c.nvfp4) {
            host = random_nvfp4_bytes(c.n, c.k, rng);
        } else {
            host.weight = random_bf16({c.n, c.k}, rng);
        }
        const LinearWeight placed = linear_weight_to(host, device_);
        EXPECT_EQ(linear_activation_dtype(placed),
                  c.nvfp4 && device_.is_cuda() ? DType::bf16 : DType::f32);
        for (int64_t m : c.tokens) {
            const Tensor x_bf16 = as_dtype(random_f32({m, c.k}, rng), DType::bf16);
            Tensor from_f32 = poisoned({m, c.n}), from_bf16 = poisoned({m, c.n});
            linear(on_device(widened(x_bf16)), placed, from_f32);
            linear(on_device(x_bf16), placed, from_bf16);
            expect_same(from_bf16, from_f32,
                        "bf16 x, " + std::to_string(c.n) + "x" + std::to_string(c.k) +
                            (c.nvfp4 ? " nvfp4" : " bf16") + ", m=" + std::to_string(m));
        }
    }
    if (device_.is_host()) return;  // stacking is a CUDA layout
    std::vector<LinearWeight> parts;
    for (int64_t rows : {96, 32, 48})
        parts.push_back(linear_weight_to(random_nvfp4_bytes(rows, 256, rng), device_));
    const StackedLinear stacked = stack_linears({&parts[0], &parts[1], &parts[2]});
    ASSERT_TRUE(stacked.defined());
    for (int64_t m : {1, 8}) {
        const Tensor x_bf16 = as_dtype(random_f32({m, 256}, rng), DType::bf16);
        std::vector<Tensor> from_f32, from_bf16;
        for (const LinearWeight& part : parts) {
            from_f32.push_back(poisoned({m, part.rows()}));
            from_bf16.push_back(poisoned({m, part.rows()}));
        }
        linear_stacked(on_device(widened(x_bf16)), stacked,
                       {&from_f32[0], &from_f32[1], &from_f32[2]});
        linear_stacked(on_device(x_bf16), stacked, {&from_bf16[0], &from_bf16[1], &from_bf16[2]});
        for (size_t p = 0; p < parts.size(); ++p) {
            expect_same(from_bf16[p], from_f32[p],
                        "stacked, bf16 x, part " + std::to_string(p) + ", m=" + std::to_string(m));
        }
    }
}

// From 65 tokens CUDA runs the tiled GEMM (ops/cuda/nvfp4_gemm.cuh): its 64 x 64 tiles with a
// partial row block (17 stripes) and partial token blocks, and its 128 x 128 tiles where the
// grid fills a 132-SM card twice (4,096 rows x 1,100 tokens). Bound as above.
TEST_P(DeviceOps, LinearNvfp4PrefillGemmBothTiles) {
    if (device_.is_host()) GTEST_SKIP() << "the host compared with itself: nothing to learn here";
    std::mt19937 rng(21);
    struct Case {
        int64_t n, k, m;
    };
    for (const Case& c : {Case{272, 1024, 65}, Case{272, 1024, 300}, Case{4096, 256, 1100}}) {
        LinearWeight weight = random_nvfp4(c.n, c.k, rng);
        Tensor x = random_f32({c.m, c.k}, rng);
        Tensor expected = Tensor::zeros(DType::f32, {c.m, c.n});
        linear(x, weight, expected);
        Tensor y = poisoned({c.m, c.n});
        linear(on_device(x), linear_weight_to(weight, device_), y);
        const double relative = kBf16Rounding + 2.0 * c.k * 0x1p-24;
        std::vector<double> bound = absolute_products(x, weight);
        for (double& b : bound) b = b * relative + 1e-30;
        expect_within(to_host(y), expected, bound,
                      ("nvfp4 gemm " + std::to_string(c.n) + "x" + std::to_string(c.m)).c_str());
    }
}

// q, k and v stacked into one matrix (one kernel) give each part exactly what its own linear
// gives: every row is computed alone, with its part's global scale. Host weights and dense ones
// are not stacked.
TEST_P(DeviceOps, LinearStackedEqualsItsParts) {
    std::mt19937 rng(24);
    const int64_t k = 256;
    std::vector<LinearWeight> parts;
    for (int64_t rows : {96, 32, 48}) {
        LinearWeight host = random_nvfp4(rows, k, rng);
        host.global_scale *= static_cast<float>(rows) / 32.0f;  // a different scale per part
        parts.push_back(linear_weight_to(host, device_));
    }
    if (device_.is_host()) {
        EXPECT_FALSE(stack_linears({&parts[0], &parts[1], &parts[2]}).defined());
        return;
    }
    std::vector<Tensor> xs, separate;
    for (int64_t m : {1, 5, 16, 17, 70}) {
        xs.push_back(on_device(random_f32({m, k}, rng)));
        for (const LinearWeight& part : parts) {
            separate.push_back(poisoned({m, part.rows()}));
            linear(xs.back(), part, separate.back());
        }
    }
    const StackedLinear stacked = stack_linears({&parts[0], &parts[1], &parts[2]});
    ASSERT_TRUE(stacked.defined());
    EXPECT_EQ(stacked.weight.rows(), 96 + 32 + 48);
    size_t index = 0;
    for (const Tensor& x : xs) {
        std::vector<Tensor> ys;
        for (const LinearWeight& part : parts) ys.push_back(poisoned({x.dim(0), part.rows()}));
        linear_stacked(x, stacked, {&ys[0], &ys[1], &ys[2]});
        for (size_t p = 0; p < parts.size(); ++p, ++index) {
            expect_within(
                to_host(ys[p]), to_host(separate[index]), 0.0,
                ("stacked part " + std::to_string(p) + ", " + std::to_string(x.dim(0)) + " tokens")
                    .c_str());
            // The part, now a view of the stack, still computes the same.
            Tensor again = poisoned({x.dim(0), parts[p].rows()});
            linear(x, parts[p], again);
            expect_within(to_host(again), to_host(separate[index]), 0.0, "part as a view");
        }
    }
    LinearWeight dense;
    dense.weight = on_device(random_bf16({32, k}, rng));
    EXPECT_FALSE(stack_linears({&parts[0], &dense}).defined());
}

// NVFP4 linears of MiniMax-M2's shapes on `device` against the host: q_proj [6144 x 3072] and
// o_proj [3072 x 6144] at decode (o_proj at one token too, the batch-1 step's shape), o_proj at
// 4 and 8 tokens (rows staged past 48 KB of shared memory, up to 98 KB, where two CTAs an SM
// still fit), and q/k/v stacked plus a stripe at 1, 8 and 16 tokens (513 stripes: more than a
// wave of 8-warp CTAs on an H100/H200, so the kernel takes 6 warps a stripe there; 8 tokens
// staged past 48 KB, 16 read through L1); o_proj at 24 tokens (the GEMV in two blocks) and
// q/k/v at 40 (the GEMM); bound as above.
void expect_nvfp4_minimax_linears(Device device, std::mt19937& rng) {
    for (auto [n, k, m] : {std::tuple<int64_t, int64_t, int64_t>{6144, 3072, 2},
                           {3072, 6144, 1},
                           {3072, 6144, 2},
                           {3072, 6144, 4},
                           {3072, 6144, 8},
                           {8208, 3072, 1},
                           {8208, 3072, 8},
                           {8208, 3072, 16},
                           {8192, 3072, 12},
                           {3072, 6144, 24},
                           {8208, 3072, 40}}) {
        LinearWeight weight = random_nvfp4_bytes(n, k, rng);
        Tensor x = random_f32({m, k}, rng);
        Tensor expected = Tensor::zeros(DType::f32, {m, n});
        linear(x, weight, expected);
        Tensor y = Tensor::zeros(DType::f32, {m, n});  // poisoned: rows not written show up
        for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = std::nanf("");
        y = y.to(device);
        linear(x.to(device), linear_weight_to(weight, device), y);
        const double relative = (device.is_cuda() ? kBf16Rounding : 0.0) + 2.0 * k * 0x1p-24;
        std::vector<double> bound = absolute_products(x, weight);
        for (double& b : bound) b = b * relative + 1e-30;
        expect_within(y.to(Device::host()), expected, bound, "nvfp4 MiniMax shape");
    }
}

TEST_P(DeviceOps, LinearNvfp4MiniMaxShapes) {
    std::mt19937 rng(8);
    expect_nvfp4_minimax_linears(device_, rng);
}

// moe_router against add_rms_norm, linear and moe_route run in turn on the same device: bitwise
// the same x, h, logits, ids and weights, whether it fuses them (CUDA, up to
// kMaxFusedRouterTokens tokens of a dense router, one token and 2 or more by kernels of their
// own; each token count runs several launches, so a fused kernel that left its CTA counter set
// would miss the next one's writes) or not.
TEST_P(DeviceOps, MoeRouterEqualsItsThreeOps) {
    std::mt19937 rng(21);
    const int64_t hidden = 3072, n_experts = 256, k = 8;
    for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{3}, kMaxFusedRouterTokens,
                      kMaxFusedRouterTokens + 2}) {
        for (DType router_dtype : {DType::bf16, DType::f32}) {
            LinearWeight router;
            router.weight = as_dtype(random_f32({n_experts, hidden}, rng, 0.02f), router_dtype);
            const LinearWeight device_router = linear_weight_to(router, device_);
            for (int variant = 0; variant < 3; ++variant) {
                const Tensor norm_weight =
                    variant == 1 ? random_f32({hidden}, rng) : random_bf16({hidden}, rng);
                const Tensor bias = variant == 0   ? random_bf16({n_experts}, rng, 0.1f)
                                    : variant == 1 ? random_f32({n_experts}, rng, 0.1f)
                                                   : Tensor();
                expect_router_as_its_three_ops(m, device_router, norm_weight, bias, k, rng,
                                               std::to_string(m) + " tokens, router " +
                                                   std::string(dtype_name(router_dtype)) +
                                                   ", variant " + std::to_string(variant));
            }
        }
    }
}

// moe_route of `logits` (top k) on the device under test against the host's: the same sigmoid
// (exp rounded once to f32) and the same f32 sums on both, so ids agree exactly and weights to
// a couple of ulps.
void expect_route_as_on_host(const Tensor& logits, const Tensor& bias, Device device,
                             int64_t k = 8) {
    const int64_t n = logits.dim(0);
    Tensor ids = Tensor::zeros(DType::i32, {n, k}), weights = Tensor::zeros(DType::f32, {n, k});
    moe_route(logits, bias, k, ids, weights);
    Tensor device_ids = Tensor::zeros(DType::i32, {n, k}, device);
    Tensor poison = Tensor::zeros(DType::f32, {n, k});  // slots the op fails to write show up
    for (int64_t i = 0; i < n * k; ++i) poison.data<float>()[i] = std::nanf("");
    Tensor device_weights = poison.to(device);
    moe_route(logits.to(device), bias.defined() ? bias.to(device) : Tensor(), k, device_ids,
              device_weights);
    Tensor got_ids = device_ids.to(Device::host());
    for (int64_t i = 0; i < n * k; ++i) {
        ASSERT_EQ(got_ids.data<int32_t>()[i], ids.data<int32_t>()[i]) << "slot " << i;
    }
    std::vector<double> bound(n * k);
    for (int64_t i = 0; i < n * k; ++i) bound[i] = 4 * 0x1p-24 * weights.data<float>()[i];
    expect_within(device_weights.to(Device::host()), weights, bound, "route weights");
}

TEST_P(DeviceOps, MoeRouteMiniMaxShapeBothBiasTypes) {
    std::mt19937 rng(9);
    Tensor logits = random_f32({7, 256}, rng, 2.0f);  // 256 experts, top 8
    for (const Tensor& bias :
         {random_f32({256}, rng, 0.1f), random_bf16({256}, rng, 0.1f), Tensor()}) {
        expect_route_as_on_host(logits, bias, device_);
    }
}

TEST_P(DeviceOps, MoeRouteExpertCountsBeyondChunksOf32) {
    // The device ranks experts within chunks of 32 first: a last chunk of 12 (300 experts) or
    // of fewer than k (260 experts, 4), one chunk short of 32, and other k than M2's.
    std::mt19937 rng(12);
    const std::pair<int64_t, int64_t> cases[] = {{300, 6}, {260, 8}, {20, 8}, {64, 1}, {2048, 8}};
    for (auto [n_experts, k] : cases) {
        SCOPED_TRACE(std::to_string(n_experts) + " experts, top " + std::to_string(k));
        expect_route_as_on_host(random_f32({3, n_experts}, rng, 2.0f),
                                random_f32({n_experts}, rng, 0.1f), device_, k);
    }
}

TEST_P(DeviceOps, MoeRouteTiesPreferTheLowerId) {
    // Logits from three values (and both zeros): most of the top 8 ties, so the order among
    // equals decides the ids; the device must pick as the CPU does, the lower id first.
    std::mt19937 rng(10);
    Tensor logits = Tensor::zeros(DType::f32, {5, 256});
    const float values[4] = {1.0f, 0.0f, -0.0f, -1.0f};
    for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = values[rng() % 4];
    expect_route_as_on_host(logits, Tensor(), device_);
}

TEST_P(DeviceOps, MoeRouteRowsWithoutNumbersStillNameDistinctExperts) {
    // A broken model's NaN logits: a row of them, one with three finite logits among them, and
    // one finite row. Every id must name an expert that exists, once (the expert kernels read
    // the experts' weights by these ids): the comparable experts first, then the others by
    // lowest id, on the host as on the device.
    std::mt19937 rng(11);
    const int64_t n_experts = 256, k = 8;
    Tensor logits = random_f32({3, n_experts}, rng, 2.0f);
    float* rows = logits.data<float>();
    for (int64_t e = 0; e < 2 * n_experts; ++e) rows[e] = std::nanf("");
    const int32_t finite[3] = {7, 131, 200};
    for (int32_t e : finite) rows[n_experts + e] = 1.0f;
    Tensor expected = Tensor::zeros(DType::i32, {3, k});
    Tensor expected_weights = Tensor::zeros(DType::f32, {3, k});
    moe_route(logits, Tensor(), k, expected, expected_weights);
    Tensor ids = Tensor::zeros(DType::i32, {3, k}, device_);
    Tensor weights = Tensor::zeros(DType::f32, {3, k}, device_);
    moe_route(logits.to(device_), Tensor(), k, ids, weights);
    const Tensor got = ids.to(Device::host());
    for (int64_t i = 0; i < 3 * k; ++i) {
        EXPECT_EQ(got.data<int32_t>()[i], expected.data<int32_t>()[i]) << "slot " << i;
    }
    const int32_t* nan_row = got.data<int32_t>();
    const int32_t* mixed_row = got.data<int32_t>() + k;
    for (int32_t j = 0; j < k; ++j) EXPECT_EQ(nan_row[j], j) << "the lowest ids";
    EXPECT_EQ(std::vector<int32_t>(mixed_row, mixed_row + k),
              (std::vector<int32_t>{0, 1, 2, 3, 4, 7, 131, 200}));
}

struct MoeCase {
    int64_t n_tokens, n_experts, top_k, hidden, intermediate;
};

enum class ExpertKind { nvfp4, nvfp4_bytes, bf16 };

LinearWeight random_bf16_weight(int64_t n, int64_t k, std::mt19937& rng) {
    LinearWeight weight;
    weight.weight = random_bf16({n, k}, rng, 1.0f / std::sqrt(static_cast<float>(k)));
    return weight;
}

// The MoE block as the model runs it: route, then the experts read the ids where they are.
void run_moe_case(const MoeCase& c, Device device, std::mt19937& rng, ExpertKind kind) {
    std::vector<ExpertWeights> experts(c.n_experts);
    auto make = kind == ExpertKind::nvfp4         ? random_nvfp4
                : kind == ExpertKind::nvfp4_bytes ? random_nvfp4_bytes
                                                  : random_bf16_weight;
    for (ExpertWeights& e : experts) {
        e.gate = make(c.intermediate, c.hidden, rng);
        e.up = make(c.intermediate, c.hidden, rng);
        e.down = make(c.hidden, c.intermediate, rng);
    }
    Tensor h = random_f32({c.n_tokens, c.hidden}, rng);
    Tensor logits = random_f32({c.n_tokens, c.n_experts}, rng, 2.0f);
    Tensor ids = Tensor::zeros(DType::i32, {c.n_tokens, c.top_k});
    Tensor weights = Tensor::zeros(DType::f32, {c.n_tokens, c.top_k});
    moe_route(logits, Tensor(), c.top_k, ids, weights);
    Tensor expected = Tensor::zeros(DType::f32, h.shape());
    moe_experts(h, ids, weights, experts, expected);

    Tensor got;
    if (device.is_host()) {
        got = Tensor::zeros(DType::f32, h.shape());
        moe_experts(h, ids, weights, experts, got);
    } else {
        GroupedExperts grouped = group_experts(experts, device);
        Tensor device_ids = Tensor::zeros(DType::i32, ids.shape(), device);
        Tensor device_weights = Tensor::zeros(DType::f32, weights.shape(), device);
        moe_route(logits.to(device), Tensor(), c.top_k, device_ids, device_weights);
        Tensor out = Tensor::zeros(DType::f32, h.shape(), device);
        moe_experts(h.to(device), device_ids, device_weights, grouped, out);
        got = out.to(Device::host());
    }
    // NVFP4: two bf16-rounded products in a row (h for gate/up, the SiLU product for down) on
    // the device: METHOD.md's band for bf16 operands is 1e-3 .. 1e-2 in ||out - ref|| / ||ref||.
    // Dense experts take h in f32 on both devices: only the summation order differs, ~1e-6.
    double error = 0, norm = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
        const double e = expected.data<float>()[i], g = got.data<float>()[i];
        ASSERT_FALSE(std::isnan(g)) << i;
        error += (g - e) * (g - e);
        norm += e * e;
    }
    const double bound = device.is_host() ? 0.0 : kind == ExpertKind::bf16 ? 1e-5 : 1e-2;
    EXPECT_LE(std::sqrt(error / norm), bound)
        << c.n_tokens << " tokens, top " << c.top_k << " of " << c.n_experts;
    EXPECT_GT(norm, 0.0);
}

// A hidden width of 1,024 gives each gate/up warp 2 groups, which it loads in chunks of 4;
// MiniMax's 3,072 (MoeExpertsMiniMaxWidths) gives it 6, in chunks of 3 (nvfp4_gemv.cuh). Each
// routed slot its own pass over its expert (fewer slots than a quarter of the experts), but for the
// third case, grouped by expert.
TEST_P(DeviceOps, MoeExpertsDecodeAndSmallPrefill) {
    std::mt19937 rng(10);
    for (const MoeCase& c : {MoeCase{1, 33, 8, 256, 128}, MoeCase{3, 49, 4, 256, 128},
                             MoeCase{5, 8, 2, 128, 64}, MoeCase{2, 65, 8, 1024, 128}}) {
        ASSERT_EQ(moe_grouped_pays(c.n_tokens, c.top_k, c.n_experts), c.n_experts == 8);
        run_moe_case(c, device_, rng, ExpertKind::nvfp4);
    }
}

// The decode down kernel's 8 staged rows of an intermediate width of 2,880 take 46 KB of dynamic
// shared memory: under 48 KB, but over it with the kernel's static 4 KB, which a launch that
// does not opt in refuses.
TEST_P(DeviceOps, MoeExpertsDecodeNearTheSharedMemoryDefault) {
    std::mt19937 rng(25);
    const MoeCase c{1, 33, 8, 128, 2880};
    ASSERT_FALSE(moe_grouped_pays(c.n_tokens, c.top_k, c.n_experts)) << "a slot a pass";
    run_moe_case(c, device_, rng, ExpertKind::nvfp4);
}

// Enough slots per expert that CUDA groups them by expert (moe_grouped_cuda.cu), fewer than 16
// on average: tiles of up to 8 slots, experts with one slot, with 9 (a full tile and one more),
// and with none; and fewer slots than experts (batched decode: most tiles of one slot).
TEST_P(DeviceOps, MoeExpertsGroupedPrefill) {
    std::mt19937 rng(19);
    for (const MoeCase& c :
         {MoeCase{40, 16, 4, 256, 128}, MoeCase{37, 8, 2, 128, 64}, MoeCase{3, 32, 8, 256, 128}}) {
        ASSERT_TRUE(moe_grouped_pays(c.n_tokens, c.top_k, c.n_experts));
        run_moe_case(c, device_, rng, ExpertKind::nvfp4);
    }
}

TEST_P(DeviceOps, MoeExpertsGroupedPrefillMiniMaxWidths) {
    if (device_.is_host()) GTEST_SKIP() << "the host compared with itself: nothing to learn here";
    std::mt19937 rng(20);
    for (const MoeCase& c : {MoeCase{60, 32, 8, 3072, 1536}, MoeCase{6, 32, 4, 3072, 1536}}) {
        ASSERT_TRUE(moe_grouped_pays(c.n_tokens, c.top_k, c.n_experts));
        run_moe_case(c, device_, rng, ExpertKind::nvfp4_bytes);
    }
}

// From 16 slots per expert on average the grouped MoE runs the tiled GEMM in tiles of 64 slots:
// experts with one tile and a part of one, and MiniMax's widths.
TEST_P(DeviceOps, MoeExpertsGemmPrefill) {
    std::mt19937 rng(22);
    run_moe_case(MoeCase{300, 8, 2, 256, 128}, device_, rng, ExpertKind::nvfp4);
}

// More slots than the CUDA sort's threads load in one pass (256 x 16 = 4,096): a prefill chunk
// in tiles of 8 slots (~8 per expert) and in the GEMM's tiles of 64 (300 per expert).
TEST_P(DeviceOps, MoeExpertsGroupedManySlots) {
    std::mt19937 rng(48);
    for (const MoeCase& c : {MoeCase{520, 512, 8, 128, 64}, MoeCase{600, 16, 8, 128, 64}}) {
        ASSERT_TRUE(moe_grouped_pays(c.n_tokens, c.top_k, c.n_experts));
        ASSERT_GT(c.n_tokens * c.top_k, 4096);
        run_moe_case(c, device_, rng, ExpertKind::nvfp4);
    }
}

TEST_P(DeviceOps, MoeExpertsGemmPrefillMiniMaxWidths) {
    if (device_.is_host()) GTEST_SKIP() << "the host compared with itself: nothing to learn here";
    std::mt19937 rng(23);
    run_moe_case(MoeCase{256, 16, 4, 3072, 1536}, device_, rng, ExpertKind::nvfp4_bytes);
}

TEST_P(DeviceOps, MoeExpertsBf16DecodeAndSmallPrefill) {
    std::mt19937 rng(15);
    for (const MoeCase& c :
         {MoeCase{1, 16, 8, 256, 128}, MoeCase{6, 16, 4, 256, 128}, MoeCase{3, 8, 2, 200, 72}}) {
        run_moe_case(c, device_, rng, ExpertKind::bf16);
    }
}

// h handed over in bf16 (moe_router's rounded copy) gives bitwise what the same values give in
// f32, in each form the CUDA experts take: a pass a slot (1 and 3 tokens), grouped tiles of up to
// 8 slots, the grouped GEMM, and dense experts (which widen it); MiniMax's widths for the first.
TEST_P(DeviceOps, MoeExpertsBf16InputEqualsTheSameValuesInF32) {
    if (device_.is_host()) GTEST_SKIP() << "the host takes h in f32 (moe_activation_dtype)";
    std::mt19937 rng(47);
    struct Case {
        MoeCase shape;
        ExpertKind kind;
        bool grouped;
    };
    for (const Case& c : {Case{{1, 33, 8, 3072, 1536}, ExpertKind::nvfp4_bytes, false},
                          Case{{3, 49, 4, 256, 128}, ExpertKind::nvfp4, false},
                          Case{{40, 16, 4, 256, 128}, ExpertKind::nvfp4, true},
                          Case{{300, 8, 2, 256, 128}, ExpertKind::nvfp4, true},
                          Case{{3, 16, 4, 256, 128}, ExpertKind::bf16, true}}) {
        const MoeCase& m = c.shape;
        ASSERT_EQ(moe_grouped_pays(m.n_tokens, m.top_k, m.n_experts), c.grouped);
        std::vector<ExpertWeights> experts(m.n_experts);
        auto make = c.kind == ExpertKind::nvfp4         ? random_nvfp4
                    : c.kind == ExpertKind::nvfp4_bytes ? random_nvfp4_bytes
                                                        : random_bf16_weight;
        for (ExpertWeights& e : experts) {
            e.gate = make(m.intermediate, m.hidden, rng);
            e.up = make(m.intermediate, m.hidden, rng);
            e.down = make(m.hidden, m.intermediate, rng);
        }
        const GroupedExperts grouped = group_experts(experts, device_);
        EXPECT_EQ(moe_activation_dtype(grouped),
                  c.kind == ExpertKind::bf16 ? DType::f32 : DType::bf16);
        const Tensor h_bf16 = as_dtype(random_f32({m.n_tokens, m.hidden}, rng), DType::bf16);
        Tensor ids = Tensor::zeros(DType::i32, {m.n_tokens, m.top_k}, device_);
        Tensor weights = Tensor::zeros(DType::f32, {m.n_tokens, m.top_k}, device_);
        moe_route(on_device(random_f32({m.n_tokens, m.n_experts}, rng, 2.0f)), Tensor(), m.top_k,
                  ids, weights);
        Tensor from_f32 = poisoned({m.n_tokens, m.hidden});
        Tensor from_bf16 = poisoned({m.n_tokens, m.hidden});
        moe_experts(on_device(widened(h_bf16)), ids, weights, grouped, from_f32);
        moe_experts(on_device(h_bf16), ids, weights, grouped, from_bf16);
        const std::string what = std::to_string(m.n_tokens) + " tokens, top " +
                                 std::to_string(m.top_k) + " of " + std::to_string(m.n_experts) +
                                 (c.kind == ExpertKind::bf16 ? ", dense" : ", nvfp4");
        expect_within(to_host(from_bf16), to_host(from_f32), 0.0, what.c_str());
    }
}

TEST_P(DeviceOps, MoeExpertsMiniMaxWidths) {
    std::mt19937 rng(11);
    const MoeCase c{1, 33, 8, 3072, 1536};
    ASSERT_FALSE(moe_grouped_pays(c.n_tokens, c.top_k, c.n_experts)) << "a slot a pass";
    run_moe_case(c, device_, rng, ExpertKind::nvfp4_bytes);
}

// One sequence of an attention case: its history and its new tokens.
struct AttentionSequence {
    int64_t n_new, n_ctx;
};

// Each sequence's history, then every sequence's new tokens in one batch, written through the
// block tables of a scrambled pool (other blocks hold noise), then attention of the new tokens;
// the same on the host as the reference. Pools of f32 and of bf16.
void run_attention_case(const AttentionShape& shape, const std::vector<AttentionSequence>& batch,
                        int64_t block_size, Device device, std::mt19937& rng) {
    const int64_t q_width = shape.n_heads * shape.head_dim;
    const int64_t kv_width = shape.n_kv_heads * shape.head_dim;
    int64_t owned = 0, n_new = 0;
    for (const AttentionSequence& s : batch) {
        owned += (s.n_ctx + block_size - 1) / block_size;
        n_new += s.n_new;
    }
    const int64_t n_blocks = 2 * owned + 1;
    Tensor key_pool = random_f32({n_blocks * block_size, kv_width}, rng, 50.0f);
    Tensor value_pool = random_f32({n_blocks * block_size, kv_width}, rng, 50.0f);
    std::vector<int32_t> ids(n_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<std::vector<int32_t>> tables;
    std::vector<PagedSequence> old_parts, new_parts;
    std::vector<Tensor> old_keys, old_values;
    int64_t next = 0;
    for (const AttentionSequence& s : batch) {
        const int64_t blocks = (s.n_ctx + block_size - 1) / block_size;
        tables.emplace_back(ids.begin() + next, ids.begin() + next + blocks);
        next += blocks;
        old_keys.push_back(random_f32({std::max<int64_t>(s.n_ctx - s.n_new, 1), kv_width}, rng));
        old_values.push_back(
            random_f32({std::max<int64_t>(s.n_ctx - s.n_new, 1), kv_width}, rng, 0.5f));
    }
    for (size_t i = 0; i < batch.size(); ++i) {
        old_parts.push_back({tables[i], 0, batch[i].n_ctx - batch[i].n_new});
        new_parts.push_back({tables[i], batch[i].n_ctx - batch[i].n_new, batch[i].n_new});
    }
    Tensor q = random_f32({n_new, q_width}, rng), keys = random_f32({n_new, kv_width}, rng);
    Tensor values = random_f32({n_new, kv_width}, rng, 0.5f);

    auto run = [&](Device on, DType dtype, DType out_dtype = DType::f32) {
        const KvLayer pool{as_dtype(key_pool, dtype).to(on), as_dtype(value_pool, dtype).to(on),
                           block_size};
        for (size_t i = 0; i < batch.size(); ++i) {
            const int64_t n_old = old_parts[i].n_new;
            if (n_old == 0) continue;
            kv_cache_write(old_keys[i].rows(0, n_old).to(on), old_values[i].rows(0, n_old).to(on),
                           paged_tokens_to(paged_tokens({&old_parts[i], 1}), on), pool);
        }
        const PagedTokens tokens = paged_tokens_to(paged_tokens(new_parts), on);
        kv_cache_write(keys.to(on), values.to(on), tokens, pool);
        Tensor out = Tensor::zeros(out_dtype, {n_new, q_width}, on);
        attention_paged(q.to(on), tokens, pool, shape, out);
        return out.to(Device::host());
    };
    for (DType dtype : {DType::f32, DType::bf16}) {
        Tensor expected = run(Device::host(), dtype);
        Tensor got = run(device, dtype);
        // tests/ops/attention_test.cpp holds the host op within 1e-5 of a double reference for
        // values in [-1, 1] (f32 scores and softmax weights over the stored keys and values,
        // outputs convex combinations of the values); the device's f32 online softmax meets the
        // same bound, and values here reach ~2.5 (normal, sd 0.5): the two within 2 x 2.5 x 1e-5.
        expect_within(got, expected, 5e-5,
                      dtype == DType::bf16 ? "attention_paged, bf16 pool" : "attention_paged");
        // Written as bf16 (an NVFP4 o_proj's input), the same outputs rounded, bitwise.
        expect_within(widened(run(device, dtype, DType::bf16)), widened(as_dtype(got, DType::bf16)),
                      0.0, "attention_paged to bf16");
    }
}

TEST_P(DeviceOps, AttentionPagedMiniMaxGroupsAndOddShapes) {
    std::mt19937 rng(13);
    run_attention_case({48, 8, 128}, {{1, 1}}, 16, device_, rng);    // the first decode step
    run_attention_case({48, 8, 128}, {{1, 300}}, 16, device_, rng);  // decode over 10 tiles
    run_attention_case({48, 8, 128}, {{1, 1000}}, 16, device_, rng);  // 16 splits, combined
    run_attention_case({48, 8, 128}, {{5, 37}}, 32, device_, rng);   // a chunk across blocks
    run_attention_case({6, 2, 24}, {{9, 9}}, 4, device_, rng);       // prefill; d not dividing 256
    run_attention_case({4, 4, 64}, {{3, 70}}, 1, device_, rng);      // no grouping, 1-row blocks
}

TEST_P(DeviceOps, AttentionPagedBatchOfDecodesChunksAndPrefills) {
    std::mt19937 rng(14);
    run_attention_case({48, 8, 128}, {{1, 40}, {1, 1}, {7, 7}, {1, 129}, {3, 50}}, 16, device_,
                       rng);
    run_attention_case({6, 2, 24}, {{2, 2}, {1, 33}, {4, 9}}, 4, device_, rng);
}

// Steps of more than 64 tokens: on CUDA the tiled prefill kernel takes the tokens of runs of 16
// or more (one sequence, consecutive positions), 16 batch tokens per CTA on mma.sync or 32 on
// wgmma (a bf16 pool on sm_90a), and the per-token kernel the rest; with few tiles both split
// the context.
TEST_P(DeviceOps, AttentionPagedPrefillTilesMiniMax) {
    std::mt19937 rng(16);
    run_attention_case({48, 8, 128}, {{300, 300}}, 16, device_, rng);  // a prompt; no split
    run_attention_case({48, 8, 128}, {{150, 350}}, 32, device_, rng);  // a chunk after 200 cached
    // The scheduler's order, decodes then chunks: tiles shared by decodes and a chunk's first
    // tokens, a 3-token chunk (the per-token kernel's) between two long ones.
    run_attention_case({48, 8, 128}, {{1, 40}, {1, 1000}, {100, 100}, {3, 50}, {90, 300}}, 16,
                       device_, rng);
    // Runs of exactly 16 (the tiled kernel's) and 15 (the per-token kernel's) sharing a CTA.
    run_attention_case({48, 8, 128}, {{16, 16}, {15, 40}, {70, 70}}, 16, device_, rng);
    // A chunk deep in a context: five splits of 416 positions.
    run_attention_case({48, 8, 128}, {{70, 1940}}, 16, device_, rng);
    // Five splits of 64 positions, the last of which the chunk's first 26 tokens cannot see at
    // all (rows that have seen nothing in a split).
    run_attention_case({48, 8, 128}, {{70, 300}}, 16, device_, rng);
}

TEST_P(DeviceOps, AttentionPagedPrefillTilesOddShapes) {
    std::mt19937 rng(17);
    run_attention_case({6, 2, 24}, {{70, 70}, {1, 9}, {77, 90}}, 4, device_, rng);  // group 3, d 24
    run_attention_case({4, 4, 64}, {{80, 100}}, 1, device_, rng);  // no grouping, 1-row blocks
    // Runs either side of the tiled kernel's 16-token minimum packed into 32-token CTAs: the
    // tiled and the per-token kernel must split the tokens between them exactly.
    run_attention_case({6, 2, 24}, {{15, 15}, {16, 20}, {17, 17}, {1, 5}, {33, 40}, {14, 14}}, 4,
                       device_, rng);
    run_attention_case({16, 2, 36}, {{66, 66}}, 16, device_,
                       rng);                                      // group 8: per-token kernel only
    run_attention_case({4, 2, 18}, {{70, 80}}, 8, device_, rng);  // d % 4 != 0: per-token only
}

// A CUDA card of 99 KB of shared memory a CTA (sm_120, the GB10), as the kernels' launch
// choices see it (FOURBIT_CUDA_SHARED_LIMIT, ops/cuda/device_attribute.h), for a scope.
class SmallSharedMemoryCard {
public:
    SmallSharedMemoryCard() { setenv("FOURBIT_CUDA_SHARED_LIMIT", "101376", 1); }
    ~SmallSharedMemoryCard() { unsetenv("FOURBIT_CUDA_SHARED_LIMIT"); }
    SmallSharedMemoryCard(const SmallSharedMemoryCard&) = delete;
    SmallSharedMemoryCard& operator=(const SmallSharedMemoryCard&) = delete;
};

// Such a card's kernels: every launch that asks for more than 99 KB fails here as it would
// there (opt_in_shared_memory). Decode attention's three stages (104 KB) do not fit: it runs
// two, with the prologue folded in or not, and must agree with the CPU as the three do. Over an
// f32 pool the per-token kernel's three stages (~105 KB) become two, and the tiled prefill
// kernel (~124 KB) gives its tokens to it. The MoE router's fused kernel at four tokens (~110 KB)
// leaves the work to its three ops; the NVFP4 linears' 98 KB rows at 4 and 8 tokens, which two
// CTAs could not share on a 100 KB SM, are read through L1.
TEST_P(DeviceOps, KernelsOnACardOf99KbOfSharedMemoryPerCta) {
    if (device_.is_host()) GTEST_SKIP() << "a CUDA card's limit";
    const SmallSharedMemoryCard card;
    std::mt19937 rng(23);
    run_folded_prologue_case({48, 8, 128}, 64, {1, 64, 65, 300, 1000}, device_, rng);
    run_attention_case({48, 8, 128}, {{1, 1}}, 16, device_, rng);  // both pools, as every case
    run_attention_case({48, 8, 128}, {{1, 300}, {1, 1000}, {1, 40}}, 16, device_, rng);
    run_attention_case({48, 8, 128}, {{300, 300}}, 16, device_, rng);  // a prompt
    const int64_t hidden = 3072, n_experts = 256;
    LinearWeight router;
    router.weight = as_dtype(random_f32({n_experts, hidden}, rng, 0.02f), DType::bf16);
    expect_router_as_its_three_ops(kMaxFusedRouterTokens, linear_weight_to(router, device_),
                                   random_bf16({hidden}, rng), random_bf16({n_experts}, rng, 0.1f),
                                   8, rng, "the router on a 99 KB card");
    expect_nvfp4_minimax_linears(device_, rng);
}

TEST_P(DeviceOps, MixedDevicesAndMissingKernelsAreNamedErrors) {
    if (device_.is_host()) GTEST_SKIP() << "needs a second device";
    std::mt19937 rng(12);
    Tensor x = random_f32({2, 64}, rng);
    Tensor dx = on_device(x);
    try {
        add(dx, x);
        FAIL() << "added a host tensor to a device one";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("share one device"), std::string::npos)
            << error.what();
    }
    LinearWeight fp8;
    fp8.weight = Tensor::zeros(DType::f8_e4m3, {64, 64});
    fp8.block_scale = Tensor::zeros(DType::f32, {1, 1});
    fp8.block_rows = fp8.block_cols = 128;
    EXPECT_THROW(linear_weight_to(fp8, device_), Error);
    LinearWeight host_nvfp4 = random_nvfp4(64, 64, rng);
    LinearWeight raw = host_nvfp4;  // checkpoint layout, bytes on the device: not tiled
    raw.weight = on_device(host_nvfp4.weight);
    raw.block_scale = on_device(host_nvfp4.block_scale);
    Tensor y = Tensor::zeros(DType::f32, {2, 64}, device_);
    EXPECT_THROW(linear(dx, raw, y), Error);
    std::vector<ExpertWeights> experts(1);
    Tensor ids = Tensor::zeros(DType::i32, {2, 1}, device_);
    Tensor weights = Tensor::zeros(DType::f32, {2, 1}, device_);
    EXPECT_THROW(moe_experts(dx, ids, weights, experts, y), Error);
    GroupedExperts too_many;  // more experts than the grouping sorts: refused before any kernel
    too_many.hidden = 64;
    too_many.count = kMaxGroupedExperts + 1;
    too_many.gate_up_codes = Tensor::zeros(DType::u8, {1}, device_);
    try {
        moe_experts(dx, ids, weights, too_many, y);
        FAIL() << "grouped " << too_many.count << " experts";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("at most 1024"), std::string::npos)
            << error.what();
    }
}

// Dispatch errors a build without a GPU can see: grouped experts live on CUDA only, and an op's
// tensors must share a device whatever the build.
TEST(DeviceDispatch, GroupedExpertsOnTheHostAreANamedError) {
    Tensor h = Tensor::zeros(DType::f32, {1, 64}), out = Tensor::zeros(DType::f32, {1, 64});
    Tensor ids = Tensor::zeros(DType::i32, {1, 2}), weights = Tensor::zeros(DType::f32, {1, 2});
    GroupedExperts grouped;
    grouped.hidden = 64;
    try {
        moe_experts(h, ids, weights, grouped, out);
        FAIL() << "grouped experts ran on the host";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("CUDA only"), std::string::npos) << error.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Devices, DeviceOps, ::testing::Values("host", "cuda"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace fourbit
