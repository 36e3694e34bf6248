// The host sampler's cost per token at MiniMax-M2's vocabulary (200,064 logits, temperature 1):
// whole-vocabulary sampling (no top_k: what an OpenAI client sends by default), with top_p
// 0.95, and with top_k 40 as MiniMax recommends. Each run reports its time against the
// previous implementation's on the same box and logits (`previous_ms`, a full sort of the ids
// for every token: 26.0 ms whole-vocabulary, 26.0 ms with top_p, 0.274 ms with top_k;
// 2026-11-26, the 2-core dev machine), as `speedup`. The logits are drawn once from a peaked distribution
// (a few dozen likely tokens over a flat tail), as a language model's are.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "runtime/sampler.h"

namespace fourbit {
namespace {

constexpr int64_t kVocabulary = 200064;

const std::vector<float>& logits() {
    static const std::vector<float> values = [] {
        std::mt19937 rng(1);
        std::normal_distribution<float> tail(0.0f, 2.0f);
        std::vector<float> v(kVocabulary);
        for (float& x : v) x = tail(rng);
        for (int i = 0; i < 40; ++i) v[(i * 7919) % kVocabulary] = 14.0f - 0.25f * i;
        return v;
    }();
    return values;
}

void run(benchmark::State& state, int64_t top_k, double top_p, double previous_ms) {
    SamplingParams params;
    params.temperature = 1.0;
    params.top_k = top_k;
    params.top_p = top_p;
    params.seed = 7;
    Sampler sampler(params);
    for (auto _ : state) benchmark::DoNotOptimize(sampler.sample(logits()));
    state.counters["previous_ms"] = previous_ms;
    state.counters["speedup"] = benchmark::Counter(previous_ms * 1e-3, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SampleWholeVocabulary(benchmark::State& state) { run(state, 0, 1.0, 26.0); }
void BM_SampleTopP095(benchmark::State& state) { run(state, 0, 0.95, 26.0); }
void BM_SampleTopK40TopP095(benchmark::State& state) { run(state, 40, 0.95, 0.274); }

BENCHMARK(BM_SampleWholeVocabulary)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SampleTopP095)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SampleTopK40TopP095)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fourbit

BENCHMARK_MAIN();
