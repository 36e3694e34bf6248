// The serving engine's batching gain: aggregate decode tokens/s with 1, 4 and 16 concurrent
// requests on the `small` preset (NVFP4 by default), each request decoding a fixed number of
// tokens after a short prompt, and the ratio to concurrency 1. Weights are read once per step
// for the whole batch, so on a memory-bound CPU the aggregate rate should grow with the batch.
//
// The model: FOURBIT_BENCH_MODEL_DIR (bench/run_cpu.sh makes small-nvfp4-seed).
#include <benchmark/benchmark.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "runtime/engine.h"

namespace fourbit {
namespace {

std::unique_ptr<MiniMaxM2> g_model;
constexpr int64_t kPromptTokens = 32;
constexpr int64_t kDecodeTokens = 64;

void BM_EngineDecode(benchmark::State& state) {
    const int64_t concurrency = state.range(0);
    EngineOptions options;
    options.max_num_seqs = concurrency;
    options.max_model_len = 4096;
    Engine engine(*g_model, options);
    for (auto _ : state) {
        std::mutex mutex;
        std::condition_variable done;
        int64_t finished = 0;
        for (int64_t r = 0; r < concurrency; ++r) {
            GenerationRequest request;
            for (int64_t i = 0; i < kPromptTokens; ++i) {
                request.prompt_ids.push_back(int32_t((r * 131 + i * 7919) % 8000));
            }
            request.sampling.temperature = 0;
            request.max_tokens = kDecodeTokens;
            request.ignore_eos = true;
            engine.submit(std::move(request), {}, [&](const FinishEvent&) {
                std::lock_guard lock(mutex);
                ++finished;
                done.notify_all();
            });
        }
        std::unique_lock lock(mutex);
        done.wait(lock, [&] { return finished == concurrency; });
    }
    const double tokens = double(concurrency * kDecodeTokens);
    state.counters["tok/s"] =
        benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["concurrency"] = double(concurrency);
}

}  // namespace
}  // namespace fourbit

int main(int argc, char** argv) {
    using namespace fourbit;
    benchmark::Initialize(&argc, argv);
    const char* dir = std::getenv("FOURBIT_BENCH_MODEL_DIR");
    if (dir == nullptr) {
        std::fprintf(stderr, "set FOURBIT_BENCH_MODEL_DIR to a checkpoint (bench/run_cpu.sh)\n");
        return 2;
    }
    g_model = std::make_unique<MiniMaxM2>(load_model_weights(dir));
    benchmark::AddCustomContext("model", dir);
    for (int64_t concurrency : {1, 4, 16}) {
        benchmark::RegisterBenchmark("engine/decode", BM_EngineDecode)
            ->Arg(concurrency)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(2.0);
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
