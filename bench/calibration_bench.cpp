// Calibration throughput: the forward `fourbit quantize` runs per sample (every Linear's input
// observed, the experts' w2 input recomputed) against the same forward without observers, on
// the `small` preset (BF16) and a 512-token sample. The plain forward is the ceiling; the
// ratio is the observers' cost. Run with --benchmark_enable_random_interleaving=true
// --benchmark_repetitions=N so that both see the same machine load.
//
// The model is made once under FOURBIT_BENCH_MODEL_DIR (default: bench-models/small), as
// cpu_forward_bench does.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "model/make_model.h"
#include "model/sequence_cache.h"
#include "quantize/calibration_observer.h"
#include "quantize/quantized_modules.h"

namespace fourbit {
namespace {

std::unique_ptr<MiniMaxM2> g_model;

std::vector<int32_t> sample_ids(int64_t n, int64_t vocab) {
    std::vector<int32_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);
    return ids;
}

void run(benchmark::State& state, bool observed) {
    const MiniMaxM2Config& c = g_model->config();
    const std::vector<int32_t> ids = sample_ids(state.range(0), c.vocab_size);
    const QuantizationPlan plan = make_quantization_plan(c, {"lm_head"});
    CalibrationState calibration = CalibrationState::empty(
        "bench", 1, plan.n_linears(), c.num_hidden_layers, c.num_local_experts, 1);
    CalibrationObserver observer(plan, g_model->weights(), calibration);
    for (auto _ : state) {
        SequenceCache cache(*g_model, static_cast<int64_t>(ids.size()));
        cache.forward(*g_model, ids, LogitRows::none, observed ? &observer : nullptr);
    }
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(ids.size()),
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PlainForward(benchmark::State& state) { run(state, false); }
void BM_ObservedForward(benchmark::State& state) { run(state, true); }

}  // namespace
}  // namespace fourbit

int main(int argc, char** argv) {
    using namespace fourbit;
    benchmark::Initialize(&argc, argv);
    const char* configured = std::getenv("FOURBIT_BENCH_MODEL_DIR");
    const std::string dir = configured ? configured : "bench-models/small";
    if (!std::filesystem::exists(std::filesystem::path(dir) / "config.json")) {
        MakeModelOptions options;
        options.preset = "small";
        options.out_dir = dir;
        make_model(options);
    }
    g_model = std::make_unique<MiniMaxM2>(load_model_weights(dir));
    benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
    for (auto* function : {BM_PlainForward, BM_ObservedForward}) {
        benchmark::RegisterBenchmark(
            function == BM_PlainForward ? "small/forward" : "small/calibration_forward",
            function)
            ->Arg(512)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()  // wall time: the forward runs on every OpenMP thread
            ->MinTime(2.0);
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
