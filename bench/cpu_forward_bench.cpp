// CPU forward pass on the `small` preset (hidden 1024, 8 layers, 32 experts top-4): prefill and
// decode tokens/s, and decode's weight bytes per second as a fraction of this machine's
// measured memory bandwidth (the decode ceiling). llama.cpp's figures for the same shape on
// the same kind of machine are in DESIGN.md; bench/results/ records ours.
//
// The model is made once with `make-model --preset small` under FOURBIT_BENCH_MODEL_DIR
// (default: bench-models/small in the current directory).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <vector>

#include "memory_bandwidth.h"
#include "model/make_model.h"
#include "model/minimax_m2.h"
#include "model/sequence_cache.h"
#include "ops/cpu/kernels.h"

namespace fourbit {
namespace {

double g_bandwidth_bytes_per_s = 0;
std::unique_ptr<MiniMaxM2> g_model;

std::vector<int32_t> prompt_ids(int64_t n, int64_t vocab) {
    std::vector<int32_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);
    return ids;
}

void BM_MemoryReadBandwidth(benchmark::State& state) {
    for (auto _ : state) state.SetIterationTime(1.0);
    state.counters["GB/s"] = g_bandwidth_bytes_per_s / 1e9;
}

void BM_Prefill(benchmark::State& state) {
    const int64_t n = state.range(0);
    std::vector<int32_t> ids = prompt_ids(n, g_model->config().vocab_size);
    for (auto _ : state) {
        SequenceCache cache(*g_model, n);
        Tensor logits = cache.forward(*g_model, ids);
        benchmark::DoNotOptimize(logits.data<float>());
    }
    state.counters["tok/s"] =
        benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Decode(benchmark::State& state) {
    const int64_t context = state.range(0);
    std::vector<int32_t> ids = prompt_ids(context, g_model->config().vocab_size);
    const int64_t block_size = 16;
    KvPool pool(g_model->config(), context / block_size + 1, block_size);
    std::vector<int32_t> table(pool.num_blocks());
    std::iota(table.begin(), table.end(), 0);
    SequenceInput prefill{ids, 0, table, LogitRows::none};
    g_model->forward(std::span<const SequenceInput>(&prefill, 1), pool);
    std::vector<int32_t> next{1};
    for (auto _ : state) {
        // Always position `context`: the context length stays fixed, each step overwriting the
        // token the one before decoded.
        SequenceInput step{next, context, table, LogitRows::last};
        Tensor logits = g_model->forward(std::span<const SequenceInput>(&step, 1), pool);
        benchmark::DoNotOptimize(logits.data<float>());
    }
    const double bytes = static_cast<double>(weight_bytes_per_decoded_token(g_model->weights()));
    state.counters["tok/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["weight_GB/s"] =
        benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["weight_MB/token"] = bytes / 1e6;
    state.counters["bandwidth_GB/s"] = g_bandwidth_bytes_per_s / 1e9;
}

}  // namespace
}  // namespace fourbit

int main(int argc, char** argv) {
    using namespace fourbit;
    benchmark::Initialize(&argc, argv);
    const char* configured = std::getenv("FOURBIT_BENCH_MODEL_DIR");
    std::string dir = configured ? configured : "bench-models/small";
    if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
        MakeModelOptions options;
        options.preset = "small";
        options.out_dir = dir;
        make_model(options);
    }
    g_model = std::make_unique<MiniMaxM2>(load_model_weights(dir));
    g_bandwidth_bytes_per_s = bench::measure_read_bandwidth();
    benchmark::AddCustomContext("cpu_kernels", cpu::kernels().isa);
    benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
    benchmark::RegisterBenchmark("memory_read_bandwidth", BM_MemoryReadBandwidth)
        ->UseManualTime()
        ->Iterations(1);
    for (int64_t n : {128, 512}) {
        benchmark::RegisterBenchmark("small/prefill", BM_Prefill)
            ->Arg(n)
            ->Unit(benchmark::kMillisecond)
            ->MinTime(2.0);
    }
    benchmark::RegisterBenchmark("small/decode", BM_Decode)
        ->Arg(64)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(3.0);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
