// `fourbit serve`: the OpenAI-compatible server (src/server/http_server.h), with vLLM's flag
// names where the meaning is the same.
#include <memory>

#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/speculative_flags.h"
#include "server/http_server.h"

namespace fourbit {

void add_serve_command(CLI::App& app) {
    auto options = std::make_shared<ServeOptions>();
    auto speculative = std::make_shared<SpeculativeFlags>();
    auto device = std::make_shared<DeviceFlags>();
    CLI::App* command =
        app.add_subcommand("serve", "serve a model over an OpenAI-compatible HTTP API");
    command->add_option("--model", options->model_dir,
                        "checkpoint directory (default: the bundled demo model, "
                        "models/minimax-m2-demo, served as minimax-m2-demo)");
    command->add_option("--host", options->host, "address to bind")->capture_default_str();
    command->add_option("--port", options->port, "port (0: any free port, logged)")
        ->capture_default_str();
    command->add_option("--served-model-name", options->served_model_names,
                        "name(s) clients use for the model (default: the --model path)");
    command
        ->add_option("--max-model-len", options->max_model_len,
                     "prompt + output tokens per sequence (0: the model's)")
        ->capture_default_str();
    command->add_option("--max-num-seqs", options->max_num_seqs, "sequences in a batch at most")
        ->capture_default_str();
    command
        ->add_option("--max-num-batched-tokens", options->max_num_batched_tokens,
                     "tokens one engine step may run")
        ->capture_default_str();
    command->add_option("--api-key", options->api_keys,
                        "require `Authorization: Bearer KEY` (repeatable; /health stays open)");
    command
        ->add_option("--reasoning-parser", options->reasoning_parser,
                     "minimax_m2 (reasoning_content apart), minimax_m2_append_think (<think> "
                     "kept in content) or none")
        ->capture_default_str();
    command->add_option("--tool-call-parser", options->tool_call_parser, "minimax_m2 or none")
        ->capture_default_str();
    command->add_flag("--enable-auto-tool-choice", options->enable_auto_tool_choice,
                      "let the model decide to call tools (tool_choice \"auto\")");
    command
        ->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching",
                   options->enable_prefix_caching,
                   "reuse the KV of repeated prompt prefixes (full blocks)")
        ->capture_default_str();
    command->add_option("--block-size", options->block_size, "tokens per KV-cache block")
        ->capture_default_str();
    command->add_option("--kv-cache-memory-bytes", options->kv_cache_memory_bytes,
                        "memory for the KV cache (0: enough for max-num-seqs full contexts, at "
                        "most a quarter of RAM)");
    command->add_option("--num-kv-blocks", options->num_kv_blocks,
                        "KV-cache blocks (overrides --kv-cache-memory-bytes)");
    command
        ->add_option("--sse-ping-interval", options->sse_ping_interval_s,
                     "seconds between `: ping` comments while a stream waits")
        ->capture_default_str();
    command
        ->add_option("--max-request-bytes", options->max_request_bytes,
                     "larger request bodies get 413")
        ->capture_default_str();
    command
        ->add_option("--http-threads", options->http_threads,
                     "HTTP worker threads (0: max-num-seqs + 16, at least 32)")
        ->capture_default_str();
    add_speculative_flags(*command, *speculative);
    add_device_flags(*command, *device);
    command->callback([options, speculative, device] {
        options->speculative = resolve_speculative_flags(*speculative);
        if (options->model_dir.empty()) {
            options->model_dir = FOURBIT_DEMO_MODEL_DIR;
            if (options->served_model_names.empty()) {
                options->served_model_names = {"minimax-m2-demo"};
            }
        }
        options->device = resolve_device(
            *device, options->model_dir, options->max_num_batched_tokens,
            options->max_num_seqs * (1 + options->speculative.num_speculative_tokens));
        options->gpu_memory_utilization = device->gpu_memory_utilization;
        options->kv_cache_dtype = flags_kv_cache_dtype(*device, options->device);
        const int code = run_server(*options);
        if (code != 0) throw CLI::RuntimeError(code);
    });
}

}  // namespace fourbit
