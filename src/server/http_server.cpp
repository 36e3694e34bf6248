// The server's life: bind the port, load the model while /health says 503, serve, and on
// SIGINT/SIGTERM cancel what runs and stop. Also the small routes (health, models, metrics,
// tokenize, detokenize, version) and the HTTP-level errors cpp-httplib makes itself (413, 404).
#include "server/http_server.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "formats/model_config.h"
#include "model/weights.h"
#include "server/api_error.h"
#include "server/response_json.h"
#include "server/server_state.h"
#include "util/error.h"

namespace fourbit {

namespace {

using ordered_json = nlohmann::ordered_json;

std::unique_ptr<LoadedModel> load_model(const ServeOptions& options) {
    const auto begin = std::chrono::steady_clock::now();
    LoadOptions load;
    load.device = options.device;
    MiniMaxM2 model(load_model_weights(options.model_dir, load));
    Tokenizer tokenizer = Tokenizer::load(options.model_dir + "/tokenizer.json");
    ChatTemplate chat_template = ChatTemplate::load_from_model_dir(options.model_dir);
    auto loaded = std::make_unique<LoadedModel>(std::move(model), std::move(tokenizer),
                                                std::move(chat_template));
    const MiniMaxM2Config& config = loaded->model.config();
    const GenerationDefaults defaults = load_generation_defaults(options.model_dir);
    loaded->sampling_defaults = sampling_defaults(defaults);
    loaded->eos_token_ids =
        defaults.eos_token_ids.empty() ? config.eos_token_ids : defaults.eos_token_ids;
    if (loaded->eos_token_ids.empty()) {
        spdlog::warn(
            "{}: no eos_token_id in generation_config.json or config.json: generation "
            "ends only at max_tokens",
            options.model_dir);
    }
    if (options.max_model_len > config.max_position_embeddings) {
        fail("--max-model-len {} is more than the model's max_position_embeddings {}",
             options.max_model_len, config.max_position_embeddings);
    }
    loaded->max_model_len =
        options.max_model_len > 0 ? options.max_model_len : config.max_position_embeddings;
    EngineOptions engine_options;
    engine_options.max_num_seqs = options.max_num_seqs;
    engine_options.max_num_batched_tokens = options.max_num_batched_tokens;
    engine_options.max_model_len = loaded->max_model_len;
    engine_options.kv_block_size = options.block_size;
    engine_options.kv_cache_memory_bytes = options.kv_cache_memory_bytes;
    engine_options.num_kv_blocks = options.num_kv_blocks;
    engine_options.gpu_memory_utilization = options.gpu_memory_utilization;
    engine_options.enable_prefix_caching = options.enable_prefix_caching;
    engine_options.kv_cache_dtype = options.kv_cache_dtype;
    engine_options.speculative = options.speculative;
    loaded->engine = std::make_unique<Engine>(loaded->model, engine_options);
    const EngineOptions& engine = loaded->engine->options();
    spdlog::info(
        "model {} loaded in {:.1f}s: {} layers, vocabulary {}, max_model_len {}; KV cache {} "
        "blocks of {} tokens ({} MiB, {}), prefix caching {}, speculation {}",
        options.model_dir,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(),
        config.num_hidden_layers, config.vocab_size, loaded->max_model_len, engine.num_kv_blocks,
        engine.kv_block_size,
        engine.num_kv_blocks *
                KvPool::bytes_per_block(config, engine.kv_block_size, engine.kv_cache_dtype) >>
            20,
        dtype_name(engine.kv_cache_dtype), engine.enable_prefix_caching ? "on" : "off",
        engine.speculative.enabled()
            ? fmt::format("n-gram k {} match {}-{}{}", engine.speculative.num_speculative_tokens,
                          engine.speculative.prompt_lookup_min,
                          engine.speculative.prompt_lookup_max,
                          engine.speculative.adaptive ? " adaptive" : "")
            : std::string("off"));
    return loaded;
}

// The OpenAI error for a status cpp-httplib set without a body (it read no valid request).
ApiError http_error(int status, const ServeOptions& options, const httplib::Request& request) {
    switch (status) {
        case 400:
            return ApiError(400, "invalid_request_error", "the HTTP request could not be read");
        case 404:
            return ApiError(404, "invalid_request_error",
                            fmt::format("no route {} {}", request.method, request.path), "",
                            "not_found");
        case 405:
            return ApiError(405, "invalid_request_error", "method not allowed");
        case 413:
            return ApiError(
                413, "invalid_request_error",
                fmt::format("the request body is larger than {} bytes", options.max_request_bytes),
                "", "request_too_large");
        case 414:
            return ApiError(414, "invalid_request_error", "the request URI is too long");
        default:
            if (status >= 500) return ApiError(status, "server_error", "internal server error");
            return ApiError(status, "invalid_request_error", "the request was refused");
    }
}

void handle_tokenize(ServerState& state, const httplib::Request& request,
                     httplib::Response& response) {
    guarded(response, [&] {
        const LoadedModel& model = state.require_model();
        const TokenizeSpec spec =
            parse_tokenize_request(parse_request_body(request.body, state.limits), state.limits);
        std::string text;
        if (spec.chat) {
            try {
                text = model.chat_template.render(*spec.chat);
            } catch (const Error& error) {
                bad_request("messages", "{}", error.what());
            }
        } else {
            text = *spec.prompt;
        }
        const std::vector<int32_t> ids = model.tokenizer.encode(text);
        ordered_json answer = {{"count", ids.size()},
                               {"max_model_len", model.max_model_len},
                               {"tokens", ids},
                               {"token_strs", nullptr}};
        if (spec.return_token_strs) {
            ordered_json strings = ordered_json::array();
            for (int32_t id : ids) strings.push_back(std::string(*model.tokenizer.token_text(id)));
            answer["token_strs"] = std::move(strings);
        }
        response.set_content(dump_json(answer), "application/json");
    });
}

void handle_detokenize(ServerState& state, const httplib::Request& request,
                       httplib::Response& response) {
    guarded(response, [&] {
        const LoadedModel& model = state.require_model();
        const DetokenizeSpec spec =
            parse_detokenize_request(parse_request_body(request.body, state.limits), state.limits);
        for (size_t i = 0; i < spec.tokens.size(); ++i) {
            if (!model.tokenizer.contains(spec.tokens[i])) {
                bad_request("tokens", "tokens[{}] = {} is not a token of this model", i,
                            spec.tokens[i]);
            }
        }
        const ordered_json answer = {{"prompt", model.tokenizer.decode(spec.tokens)}};
        response.set_content(dump_json(answer), "application/json");
    });
}

void handle_models(ServerState& state, const httplib::Request&, httplib::Response& response) {
    const LoadedModel* model = state.model.load();
    ordered_json data = ordered_json::array();
    for (const std::string& name : state.limits.served_model_names) {
        data.push_back({{"id", name},
                        {"object", "model"},
                        {"created", static_cast<int64_t>(std::time(nullptr))},
                        {"owned_by", "fourbit"},
                        {"root", state.options.model_dir},
                        {"parent", nullptr},
                        {"max_model_len", model ? ordered_json(model->max_model_len) : nullptr}});
    }
    response.set_content(dump_json({{"object", "list"}, {"data", std::move(data)}}),
                         "application/json");
}

void handle_metrics(ServerState& state, const httplib::Request&, httplib::Response& response) {
    const LoadedModel* model = state.model.load();
    const EngineStats stats = model ? model->engine->take_stats() : EngineStats{};
    response.set_content(state.metrics.render(stats), "text/plain; version=0.0.4; charset=utf-8");
}

void configure(httplib::Server& server, ServerState& state) {
    const ServeOptions& options = state.options;
    const size_t threads =
        options.http_threads > 0
            ? static_cast<size_t>(options.http_threads)
            : static_cast<size_t>(std::max<int64_t>(32, options.max_num_seqs + 16));
    // NOTE: a streaming response holds its worker thread until it ends, so the pool must exceed
    // the number of concurrent streams the engine runs (engine.md §5.4).
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_payload_max_length(options.max_request_bytes);
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [&state](const httplib::Request& request, httplib::Response& response) {
            if (!response.body.empty() || response.is_chunked_content_provider_) {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            set_error_response(response, http_error(response.status, state.options, request));
            return httplib::Server::HandlerResponse::Handled;
        }));
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
            set_error_response(response, ApiError(500, "server_error", "internal server error"));
        });
    server.set_logger([](const httplib::Request& request, const httplib::Response& response) {
        spdlog::debug("{} {} {}", request.method, request.path, response.status);
    });

    server.Get("/health", [&state](const httplib::Request&, httplib::Response& response) {
        if (state.model.load()) {
            response.status = 200;
        } else {
            set_error_response(response,
                               ApiError(503, "service_unavailable", "the model is loading"));
        }
    });
    // Every other route needs a key when keys are set. NOTE: checked in the handler, after
    // cpp-httplib has read the body: refusing earlier (a pre-routing handler) would leave the
    // body unread on a keep-alive connection, to be parsed as the next request.
    using Route = void (*)(ServerState&, const httplib::Request&, httplib::Response&);
    auto authorized = [&state](Route route) {
        return [&state, route](const httplib::Request& request, httplib::Response& response) {
            if (state.api_keys.enabled() &&
                !state.api_keys.accepts(request.get_header_value("Authorization"))) {
                set_error_response(
                    response, ApiError(401, "authentication_error",
                                       "a valid API key is needed: Authorization: Bearer <key>", "",
                                       "invalid_api_key"));
                return;
            }
            route(state, request, response);
        };
    };
    server.Get("/version",
               authorized([](ServerState&, const httplib::Request&, httplib::Response& response) {
                   response.set_content(R"({"version": "0.1.0"})", "application/json");
               }));
    server.Get("/v1/models", authorized(handle_models));
    server.Get("/metrics", authorized(handle_metrics));
    server.Post("/v1/chat/completions", authorized(handle_chat_completions));
    server.Post("/v1/completions", authorized(handle_completions));
    server.Post("/tokenize", authorized(handle_tokenize));
    server.Post("/detokenize", authorized(handle_detokenize));
}

}  // namespace

ServerState::ServerState(const ServeOptions& options_in)
    : options(options_in),
      api_keys(options_in.api_keys),
      reasoning_parser(reasoning_parser_from_name(options_in.reasoning_parser)),
      tool_call_parser(tool_call_parser_from_name(options_in.tool_call_parser)),
      metrics(options_in.served_model_names.empty() ? options_in.model_dir
                                                    : options_in.served_model_names.front()) {
    limits.served_model_names = options.served_model_names;
    if (limits.served_model_names.empty()) limits.served_model_names.push_back(options.model_dir);
    limits.enable_auto_tool_choice = options.enable_auto_tool_choice;
    limits.tool_call_parser = tool_call_parser;
    limits.max_n = options.max_n;
}

const LoadedModel& ServerState::require_model() const {
    const LoadedModel* loaded = model.load();
    if (!loaded) throw ApiError(503, "service_unavailable", "the model is loading; retry shortly");
    return *loaded;
}

void set_error_response(httplib::Response& response, const ApiError& error) {
    response.status = error.status;
    response.set_content(dump_json(error_json(error)), "application/json");
}

int run_server(const ServeOptions& options) {
    if (options.model_dir.empty()) fail("no model directory given (--model)");
    if (options.port < 0 || options.port > 65535)
        fail("--port must be in 0..65535, got {}", options.port);
    if (!(options.sse_ping_interval_s > 0)) fail("--sse-ping-interval must be positive");
    if (options.max_num_seqs < 1) fail("--max-num-seqs must be positive");
    if (options.max_num_batched_tokens < 1) fail("--max-num-batched-tokens must be positive");
    if (options.max_model_len < 0) fail("--max-model-len must be positive (or 0 for the model's)");
    if (options.block_size < 1) fail("--block-size must be positive");
    if (options.kv_cache_memory_bytes < 0) fail("--kv-cache-memory-bytes must be >= 0");
    if (options.num_kv_blocks < 0) fail("--num-kv-blocks must be >= 0");
    ServerState state(options);
    httplib::Server server;
    configure(server, state);

    // SIGINT and SIGTERM are taken by one thread (sigwait) rather than a handler, so stopping
    // can lock and notify; every thread started from here on inherits the blocked mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is a failed write, not a death

    const int port = options.port == 0
                         ? server.bind_to_any_port(options.host)
                         : (server.bind_to_port(options.host, options.port) ? options.port : -1);
    if (port < 0) {
        spdlog::error("cannot listen on {}:{}", options.host, options.port);
        return 1;
    }
    spdlog::info("listening on http://{}:{} (model loading: /health answers 503 until ready)",
                 options.host, port);
    std::atomic<bool> listener_done{false};
    std::thread listener([&] {
        server.listen_after_bind();
        listener_done.store(true);
    });
    // NOTE: stop() does nothing before the listener has started running, so wait for that.
    auto stop_server = [&] {
        while (!server.is_running() && !listener_done.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        server.stop();
    };

    std::atomic<bool> quit{false};
    std::thread signal_waiter([&] {
        const timespec tick{0, 200'000'000};
        while (!quit.load()) {
            const int signal_number = sigtimedwait(&stop_signals, nullptr, &tick);
            if (signal_number < 0) continue;
            spdlog::info("signal {}: stopping", signal_number);
            if (!state.model.load()) {
                // Loading cannot be interrupted, and nothing needs to be saved.
                std::fflush(nullptr);
                std::_Exit(0);
            }
            state.stopping.store(true);  // running requests notice within a poll interval
            stop_server();
            return;
        }
    });

    int exit_code = 0;
    try {
        state.model_storage = load_model(options);
        state.model.store(state.model_storage.get());
        spdlog::info("ready: http://{}:{}/v1 serves {}", options.host, port,
                     state.limits.served_model_names.front());
    } catch (const std::exception& error) {
        spdlog::error("cannot load the model: {}", error.what());
        exit_code = 1;
        state.stopping.store(true);
        stop_server();
    }
    listener.join();
    quit.store(true);
    signal_waiter.join();
    state.model.store(nullptr);
    state.model_storage.reset();  // the engine first (it cancels what is left), then the model
    return exit_code;
}

}  // namespace fourbit
