// `fourbit serve`: an OpenAI-compatible HTTP server over the engine (DESIGN.md data flow:
// HTTP -> validate -> render + tokenize -> engine -> detokenize + parse -> SSE).
//
// Routes: POST /v1/chat/completions, POST /v1/completions (streamed or whole), GET /v1/models,
// GET /health (503 until the model is loaded: the port opens first), GET /metrics (Prometheus),
// POST /tokenize, POST /detokenize (vLLM's shapes), GET /version. With --api-key every route but
// /health needs `Authorization: Bearer <key>`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace fourbit {

struct ServeOptions {
    std::string model_dir;
    std::string host = "127.0.0.1";
    int port = 8000;                              // 0: any free port (the log line says which)
    std::vector<std::string> served_model_names;  // empty: the model directory as given
    int64_t max_model_len = 0;                    // 0: the model's max_position_embeddings
    int64_t max_num_seqs = EngineOptions{}.max_num_seqs;
    int64_t max_num_batched_tokens = EngineOptions{}.max_num_batched_tokens;
    std::vector<std::string> api_keys;
    std::string reasoning_parser = "minimax_m2";
    std::string tool_call_parser = "minimax_m2";
    bool enable_auto_tool_choice = false;
    bool enable_prefix_caching = EngineOptions{}.enable_prefix_caching;
    int64_t block_size = EngineOptions{}.kv_block_size;
    int64_t kv_cache_memory_bytes = 0;  // 0: EngineOptions' default
    int64_t num_kv_blocks = 0;          // 0: from kv_cache_memory_bytes
    SpeculativeConfig speculative;      // --speculative-config / --profile
    Device device = Device::host();     // where the model runs (--device)
    double gpu_memory_utilization = 0.9;
    DType kv_cache_dtype = DType::f32;     // the KV cache's elements (--kv-cache-dtype)
    double sse_ping_interval_s = 15;       // SSE comment pings while a stream has nothing to say
    size_t max_request_bytes = 32u << 20;  // larger bodies: 413
    int64_t max_n = 128;
    int http_threads = 0;  // 0: max_num_seqs + 16 (a stream holds its thread), at least 32
};

// Listens, loads the model, and serves until SIGINT or SIGTERM. Returns the process exit code
// (non-zero when the port cannot be bound or the model cannot be loaded). Bad options: Error.
int run_server(const ServeOptions& options);

}  // namespace fourbit
