// Tokenizer encode throughput (MB of UTF-8 text per second, one thread) on the four reference
// vocabularies, warm: the BPE cache is filled by the first iteration, as in a long-running
// server. bench/run_tokenizer.sh runs it beside Hugging Face `tokenizers` on the same text
// and records both in bench/results/.
//
// FOURBIT_TOKENIZER_JSON_DIR: the decompressed *.tokenizer.json files (the build's
// tests/text/tokenizers/); FOURBIT_BENCH_TOKENIZER_TEXT: the text file to encode.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace fourbit {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value && *value ? value : fallback;
}

const std::string& bench_text() {
    static const std::string text = [] {
        const std::string path = env_or("FOURBIT_BENCH_TOKENIZER_TEXT", "bench-tokenizer/text.txt");
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            std::fprintf(stderr, "tokenizer_bench: cannot read %s (FOURBIT_BENCH_TOKENIZER_TEXT)\n",
                         path.c_str());
            std::exit(1);
        }
        std::ostringstream bytes;
        bytes << in.rdbuf();
        return bytes.str();
    }();
    return text;
}

void BM_Encode(benchmark::State& state, const std::string& vocabulary) {
    const std::string dir = env_or("FOURBIT_TOKENIZER_JSON_DIR", "tests/text/tokenizers");
    const Tokenizer tokenizer = Tokenizer::load(dir + "/" + vocabulary + ".tokenizer.json");
    const std::string& text = bench_text();
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (auto _ : state) {
        ids.clear();
        tokenizer.encode(text, ids);
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
    state.counters["MB/s"] = benchmark::Counter(static_cast<double>(text.size()) / 1e6,
                                                benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens"] = static_cast<double>(ids.size());
    state.counters["bytes"] = static_cast<double>(text.size());
}

void BM_Decode(benchmark::State& state, const std::string& vocabulary) {
    const std::string dir = env_or("FOURBIT_TOKENIZER_JSON_DIR", "tests/text/tokenizers");
    const Tokenizer tokenizer = Tokenizer::load(dir + "/" + vocabulary + ".tokenizer.json");
    const std::vector<int32_t> ids = tokenizer.encode(bench_text());
    for (auto _ : state) {
        std::string text = tokenizer.decode(ids);
        benchmark::DoNotOptimize(text.data());
    }
    state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bench_text().size()) / 1e6,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace
}  // namespace fourbit

int main(int argc, char** argv) {
    for (const char* vocabulary : {"qwen3", "llama3", "deepseek_v3", "gpt4o"}) {
        benchmark::RegisterBenchmark((std::string("encode/") + vocabulary).c_str(),
                                     fourbit::BM_Encode, std::string(vocabulary))
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(2.0);
    }
    for (const char* vocabulary : {"qwen3", "gpt4o"}) {
        benchmark::RegisterBenchmark((std::string("decode/") + vocabulary).c_str(),
                                     fourbit::BM_Decode, std::string(vocabulary))
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
