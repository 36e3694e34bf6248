// `fourbit bench-model`: the model's own speed, without HTTP or a scheduler (llama-bench's
// pp/tg tests): prefill tokens/s of a prompt of P tokens, and decode tokens/s of B sequences
// that each hold C tokens of context, greedy as the engine decodes greedy requests (the argmax
// picked where the logits are, forward_top_k).
// Decode at batch 1 is reported against the bandwidth ceiling: the bytes one step must read
// (weight_bytes_per_decoded_token plus the context's keys and values) over the device's
// measured copy bandwidth.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/kernel_trace.h"
#include "model/minimax_m2.h"

namespace fourbit {

struct ModelBenchOptions {
    std::vector<int64_t> prompt_lengths{512};  // one pp test each
    std::vector<int64_t> batch_sizes{1};       // one tg test each
    int64_t decode_tokens = 128;               // steps per tg test
    int64_t context = 512;                     // tokens each sequence holds before a tg test
    int64_t prefill_chunk = 4096;              // tokens per forward in prefill (serve's default)
    int repetitions = 3;                       // the best of these is reported
    DType kv_cache_dtype = DType::f32;         // the KV pool's elements
    bool profile_ops = false;  // time each op of each test (model/op_profile.h): slower steps
    // After each decode test, one more (untimed) run whose kernels CUPTI records as they ran,
    // CUDA graphs included (bench/kernel_trace.h). CUDA only.
    bool trace_kernels = false;
};

struct ModelBenchRow {
    std::string test;  // "pp4096", "tg128 @ 512 x8"
    int64_t batch = 1;
    double tokens_per_s = 0;
    double ms_per_step = 0;      // one forward (tg) or the whole prompt (pp)
    double bytes_per_step = 0;   // tg at batch 1: the bytes a step must read; else 0
    double ceiling_fraction = 0; // tg at batch 1: bytes / time / copy bandwidth; else 0
    std::map<std::string, double> op_ms_per_step;  // with profile_ops: each op's share
    KernelTable kernels;  // with trace_kernels (decode tests): the traced run's kernels
};

struct ModelBenchResult {
    std::string device;
    DType kv_cache_dtype = DType::f32;
    double copy_bytes_per_s = 0;  // measured: read + write bytes of a large device copy
    std::vector<ModelBenchRow> rows;
};

ModelBenchResult run_model_bench(const MiniMaxM2& model, const ModelBenchOptions& options);

// A Markdown table of the result.
std::string model_bench_markdown(const ModelBenchResult& result);

}  // namespace fourbit
