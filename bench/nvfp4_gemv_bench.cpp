// NVFP4 GEMV on the CPU at MiniMax-M2.7's shapes (expert w1/w3 [1536, 3072], expert w2
// [3072, 1536], q_proj [6144, 3072]) for 1 to 8 tokens: weight bytes read per second as a
// fraction of the measured memory bandwidth, and the speed-up over the same product with BF16
// weights. Each benchmark cycles through enough distinct matrices (> 256 MB) that the weights
// come from memory, not the caches, as they do in a real decode step.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "memory_bandwidth.h"
#include "nvfp4/quantize.h"
#include "ops/linear.h"
#include "tensor/numeric.h"

namespace fourbit {
namespace {

double g_bandwidth_bytes_per_s = 0;
constexpr int64_t kWorkingSetBytes = int64_t(256) << 20;

struct MatrixShape {
    const char* name;
    int64_t rows, cols;
};
constexpr MatrixShape kShapes[] = {{"expert_w1_1536x3072", 1536, 3072},
                             {"expert_w2_3072x1536", 3072, 1536},
                             {"q_proj_6144x3072", 6144, 3072}};

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> w(rows * cols);
    for (float& value : w) value = normal(rng);
    return w;
}

LinearWeight nvfp4_weight(const std::vector<float>& w, int64_t rows, int64_t cols) {
    NvFp4Matrix q = quantize_nvfp4(w, rows, cols, nvfp4_global_scale(checked_amax(w, "w")), "w");
    LinearWeight weight;
    weight.weight = Tensor::zeros(DType::u8, {rows, cols / 2});
    std::memcpy(weight.weight.data<uint8_t>(), q.packed.data(), q.packed.size());
    weight.block_scale = Tensor::zeros(DType::f8_e4m3, {rows, cols / 16});
    std::memcpy(weight.block_scale.data<uint8_t>(), q.block_scales.data(), q.block_scales.size());
    weight.global_scale = q.global_scale;
    return weight;
}

LinearWeight bf16_weight(const std::vector<float>& w, int64_t rows, int64_t cols) {
    LinearWeight weight;
    weight.weight = Tensor::zeros(DType::bf16, {rows, cols});
    for (int64_t i = 0; i < rows * cols; ++i) weight.weight.data<uint16_t>()[i] = f32_to_bf16(w[i]);
    return weight;
}

uint64_t weight_bytes(const LinearWeight& w) {
    return w.weight.size_bytes() + w.block_scale.size_bytes();
}

// Copies of one matrix, enough to exceed the caches: distinct memory, same values.
std::vector<LinearWeight> working_set(const LinearWeight& one) {
    const int64_t copies = std::max<int64_t>(2, kWorkingSetBytes / weight_bytes(one));
    std::vector<LinearWeight> set;
    for (int64_t i = 0; i < copies; ++i) {
        LinearWeight copy = one;
        copy.weight = Tensor::zeros(one.weight.dtype(), one.weight.shape());
        std::memcpy(copy.weight.data<uint8_t>(), one.weight.raw(), one.weight.size_bytes());
        if (one.block_scale.defined()) {
            copy.block_scale = Tensor::zeros(one.block_scale.dtype(), one.block_scale.shape());
            std::memcpy(copy.block_scale.data<uint8_t>(), one.block_scale.raw(),
                        one.block_scale.size_bytes());
        }
        set.push_back(std::move(copy));
    }
    return set;
}

void BM_Gemv(benchmark::State& state, MatrixShape shape, bool nvfp4) {
    const int64_t tokens = state.range(0);
    std::vector<float> w = random_matrix(shape.rows, shape.cols, 1);
    std::vector<LinearWeight> weights = working_set(nvfp4 ? nvfp4_weight(w, shape.rows, shape.cols)
                                                          : bf16_weight(w, shape.rows, shape.cols));
    Tensor x = Tensor::zeros(DType::f32, {tokens, shape.cols});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.001f * (i % 97);
    Tensor y = Tensor::zeros(DType::f32, {tokens, shape.rows});
    size_t next = 0;
    for (auto _ : state) {
        linear(x, weights[next], y);
        benchmark::DoNotOptimize(y.data<float>());
        next = (next + 1) % weights.size();
    }
    const double bytes = static_cast<double>(weight_bytes(weights.front()));
    state.counters["weight_GB/s"] =
        benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bandwidth_GB/s"] = g_bandwidth_bytes_per_s / 1e9;
    state.counters["tokens"] = static_cast<double>(tokens);
}

}  // namespace
}  // namespace fourbit

int main(int argc, char** argv) {
    using namespace fourbit;
    benchmark::Initialize(&argc, argv);
    g_bandwidth_bytes_per_s = bench::measure_read_bandwidth();
    for (const MatrixShape& shape : kShapes) {
        for (bool nvfp4 : {true, false}) {
            std::string name = std::string(nvfp4 ? "nvfp4/" : "bf16/") + shape.name;
            benchmark::RegisterBenchmark(name.c_str(), BM_Gemv, shape, nvfp4)
                ->Arg(1)
                ->Arg(2)
                ->Arg(4)
                ->Arg(8)
                ->Unit(benchmark::kMicrosecond)
                ->MinTime(0.5);
        }
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
