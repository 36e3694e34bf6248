#include "bench/model_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <optional>
#include <random>

#include "model/kv_pool.h"
#include "model/op_profile.h"
#include "tensor/cuda_memory.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Read + write bytes per second of a 1 GiB copy within the device (the best of 5).
double copy_bandwidth(Device device) {
    const int64_t n = int64_t(1) << 28;  // f32s: 1 GiB
    Tensor a = Tensor::zeros(DType::f32, {n}, device), b = Tensor::zeros(DType::f32, {n}, device);
    b.copy_from(a);
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
        const auto start = Clock::now();
        b.copy_from(a);
        best = std::min(best, seconds_since(start));
    }
    return 2.0 * static_cast<double>(a.size_bytes()) / best;
}

int32_t argmax_row(const Tensor& logits, int64_t row) {
    const float* p = logits.data<float>() + row * logits.dim(1);
    return static_cast<int32_t>(std::max_element(p, p + logits.dim(1)) - p);
}

// Sequences with their own block tables in one pool.
struct Batch {
    std::vector<std::vector<int32_t>> tables;
    std::vector<int64_t> lengths;
};

Batch make_batch(int64_t n_sequences, int64_t capacity, int64_t block_size) {
    Batch batch;
    const int64_t blocks = (capacity + block_size - 1) / block_size;
    for (int64_t s = 0; s < n_sequences; ++s) {
        std::vector<int32_t>& table = batch.tables.emplace_back(blocks);
        std::iota(table.begin(), table.end(), static_cast<int32_t>(s * blocks));
    }
    batch.lengths.assign(n_sequences, 0);
    return batch;
}

// Runs `ids` after what sequence s holds, in chunks; returns the last chunk's logits.
Tensor prefill(const MiniMaxM2& model, const KvPool& pool, Batch& batch, int64_t s,
               const std::vector<int32_t>& ids, int64_t chunk) {
    Tensor logits;
    for (int64_t at = 0; at < static_cast<int64_t>(ids.size()); at += chunk) {
        const int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(ids.size()) - at);
        const SequenceInput input{std::span(ids).subspan(at, n), batch.lengths[s], batch.tables[s],
                                  LogitRows::last};
        logits = model.forward(std::span(&input, 1), pool);
        batch.lengths[s] += n;
    }
    return logits;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, std::mt19937& rng) {
    std::vector<int32_t> ids(n);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);
    return ids;
}

}  // namespace

ModelBenchResult run_model_bench(const MiniMaxM2& model, const ModelBenchOptions& options) {
    const MiniMaxM2Config& c = model.config();
    const Device device = model.weights().device();
    constexpr int64_t kBlock = 32;
    ModelBenchResult result;
    result.device = device_text(device);
    result.kv_cache_dtype = options.kv_cache_dtype;
    if (options.trace_kernels && !device.is_cuda()) {
        fail("--trace-kernels records CUDA kernels; the model is on {}", device_text(device));
    }
    OpProfile& profile = OpProfile::global();
    profile.enable(options.profile_ops);
    // Each op's time per step of the test just run, when profiling.
    auto op_shares = [&](double steps) {
        std::map<std::string, double> shares;
        for (const auto& [op, seconds] : profile.totals()) shares[op] = 1e3 * seconds / steps;
        profile.reset();
        return shares;
    };
    // A test's KV pool, refused with the numbers (not a bare allocation failure) where the
    // device lacks the memory.
    auto make_pool = [&](const std::string& test, int64_t blocks) {
        if (device.is_cuda()) {
            const int64_t bytes =
                blocks * KvPool::bytes_per_block(c, kBlock, options.kv_cache_dtype);
            const int64_t free = cuda_memory_info(device.index).free_bytes;
            if (bytes > free) {
                fail(
                    "{}: its KV cache ({}) needs {:.1f} GiB, {} has {:.1f} GiB free: fewer "
                    "sequences (-b), a shorter --context or --kv-cache-dtype bf16",
                    test, dtype_name(options.kv_cache_dtype), bytes / 1073741824.0,
                    device_text(device), free / 1073741824.0);
            }
        }
        return KvPool(c, blocks, kBlock, device, options.kv_cache_dtype);
    };
    // Whether run r is timed: those after the warm-up, or the warm-up itself when it is the only
    // run (-r 0, as profilers use it).
    auto timed = [&](int r) { return r > 0 || options.repetitions == 0; };
    result.copy_bytes_per_s = copy_bandwidth(device);
    spdlog::info("{}: copy bandwidth {:.0f} GB/s", result.device, result.copy_bytes_per_s / 1e9);
    std::mt19937 rng(1);

    for (int64_t length : options.prompt_lengths) {
        double best = 1e30;
        // One pool for every run: each rewrites every position it reads, and the warm-up run
        // pays the first touch of the pool's pages, as a serving engine's long-lived pool does.
        const KvPool pool = make_pool(fmt::format("pp{}", length), (length + kBlock - 1) / kBlock);
        for (int r = 0; r < options.repetitions + 1; ++r) {  // the first warms up
            Batch batch = make_batch(1, length, kBlock);
            const std::vector<int32_t> ids = random_ids(length, c.vocab_size, rng);
            const auto start = Clock::now();
            prefill(model, pool, batch, 0, ids, options.prefill_chunk);
            if (timed(r)) best = std::min(best, seconds_since(start));
            // The warm-up's one-time costs (cuBLAS's first call, module loads: 55 of 71 ms in a
            // 512-token profile on the H100) are not the test's.
            if (r == 0 && options.repetitions > 0) profile.reset();
        }
        ModelBenchRow row;
        row.test = fmt::format("pp{}", length);
        row.tokens_per_s = length / best;
        row.ms_per_step = 1e3 * best;
        row.op_ms_per_step = op_shares(std::max(options.repetitions, 1));
        result.rows.push_back(row);
        spdlog::info("pp{}: {:.1f} tokens/s", length, length / best);
    }

    const double kv_bytes_per_position =
        static_cast<double>(KvPool::bytes_per_block(c, 1, options.kv_cache_dtype));
    for (int64_t b : options.batch_sizes) {
        profile.reset();
        const int64_t capacity = options.context + options.decode_tokens + 1;
        const KvPool pool =
            make_pool(fmt::format("tg{} @ {} x{}", options.decode_tokens, options.context, b),
                      b * ((capacity + kBlock - 1) / kBlock));
        double best = 1e30;
        std::vector<KernelSpan> spans;
        const bool trace = options.trace_kernels;
        // The runs after the warm-up are timed; with a trace, one more run records its kernels.
        for (int r = 0; r < options.repetitions + 1 + (trace ? 1 : 0); ++r) {
            const bool traced = trace && r == options.repetitions + 1;
            Batch batch = make_batch(b, capacity, kBlock);
            std::vector<std::vector<int32_t>> next(b);
            for (int64_t s = 0; s < b; ++s) {
                // With no context the first step starts from a random token (llama-bench's tg).
                next[s] = random_ids(1, c.vocab_size, rng);
                if (options.context == 0) continue;
                Tensor logits =
                    prefill(model, pool, batch, s, random_ids(options.context, c.vocab_size, rng),
                            options.prefill_chunk);
                next[s] = {argmax_row(logits, 0)};
            }
            profile.reset();  // the prefill of the context is not this test's
            std::optional<KernelTrace> recording;
            if (traced) recording.emplace();
            const auto start = Clock::now();
            for (int64_t step = 0; step < options.decode_tokens; ++step) {
                std::vector<SequenceInput> inputs;
                for (int64_t s = 0; s < b; ++s) {
                    inputs.push_back({next[s], batch.lengths[s], batch.tables[s], LogitRows::last});
                }
                // Greedy, as the engine decodes greedy requests: the ids picked on the device.
                const TopLogits top = model.forward_top_k(inputs, pool, 1);
                for (int64_t s = 0; s < b; ++s) {
                    next[s] = {top.ids.data<int32_t>()[s]};
                    ++batch.lengths[s];
                }
            }
            if (traced) {
                spans = recording->stop();
            } else if (timed(r)) {
                best = std::min(best, seconds_since(start));
            }
        }
        const double step_s = best / options.decode_tokens;
        ModelBenchRow row;
        row.test = fmt::format("tg{} @ {} x{}", options.decode_tokens, options.context, b);
        row.batch = b;
        row.tokens_per_s = b / step_s;
        row.ms_per_step = 1e3 * step_s;
        row.op_ms_per_step = op_shares(static_cast<double>(options.decode_tokens));
        row.kernels = kernel_table(spans, options.decode_tokens);
        if (b == 1) {
            // The average step's context: context + half the generated tokens.
            row.bytes_per_step =
                static_cast<double>(weight_bytes_per_decoded_token(model.weights())) +
                kv_bytes_per_position * (options.context + options.decode_tokens / 2.0);
            row.ceiling_fraction = row.bytes_per_step / step_s / result.copy_bytes_per_s;
        }
        result.rows.push_back(row);
        spdlog::info("{}: {:.1f} tokens/s", row.test, row.tokens_per_s);
    }
    return result;
}

std::string model_bench_markdown(const ModelBenchResult& result) {
    std::string out = fmt::format(
        "device {}, copy bandwidth {:.0f} GB/s, KV cache {}\n\n| test | tokens/s | ms per step | "
        "bytes per step | of the bandwidth ceiling |\n|---|---:|---:|---:|---:|\n",
        result.device, result.copy_bytes_per_s / 1e9, dtype_name(result.kv_cache_dtype));
    for (const ModelBenchRow& row : result.rows) {
        out += fmt::format(
            "| {} | {:.1f} | {:.3f} | {} | {} |\n", row.test, row.tokens_per_s, row.ms_per_step,
            row.bytes_per_step > 0 ? fmt::format("{:.2f} GB", row.bytes_per_step / 1e9) : "",
            row.ceiling_fraction > 0 ? fmt::format("{:.0f}%", 100 * row.ceiling_fraction) : "");
    }
    for (const ModelBenchRow& row : result.rows) {
        const KernelTable& table = row.kernels;
        if (table.kernels.empty()) continue;
        out += fmt::format(
            "\n{}: the step's kernels as they ran (CUDA graphs included; CUPTI's records of an "
            "untimed run: {:.3f} ms a step from the first kernel's start to the last one's end)"
            "\n\n| kernel (grid) | calls a step | us a call | ms a step | of the step |\n"
            "|---|---:|---:|---:|---:|\n",
            row.test, table.ms_per_step);
        for (const TracedKernel& kernel : table.kernels) {
            out +=
                fmt::format("| {} | {:.2f} | {:.2f} | {:.3f} | {:.1f}% |\n", kernel.name,
                            kernel.calls_per_step, 1e3 * kernel.ms_per_step / kernel.calls_per_step,
                            kernel.ms_per_step, 100 * kernel.ms_per_step / table.ms_per_step);
        }
        out +=
            fmt::format("| (no kernel running) | | | {:.3f} | {:.1f}% |\n", table.idle_ms_per_step,
                        100 * table.idle_ms_per_step / table.ms_per_step);
    }
    for (const ModelBenchRow& row : result.rows) {
        if (row.op_ms_per_step.empty()) continue;
        double total = 0;
        for (const auto& [op, ms] : row.op_ms_per_step) total += ms;
        out += fmt::format(
            "\n{}: where a step's time goes (each op waited for; {:.3f} ms per step "
            "so measured)\n\n| op | ms per step | share |\n|---|---:|---:|\n",
            row.test, total);
        for (const auto& [op, ms] : row.op_ms_per_step) {
            out += fmt::format("| {} | {:.3f} | {:.0f}% |\n", op, ms, 100 * ms / total);
        }
    }
    return out;
}

}  // namespace fourbit
