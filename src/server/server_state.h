// What the server's routes share (private to src/server): options, the loaded model and its
// engine, metrics, and the shutdown flag.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "model/minimax_m2.h"
#include "runtime/engine.h"
#include "server/api_error.h"
#include "server/auth.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_schema.h"
#include "text/chat_template.h"
#include "text/message_parser.h"
#include "text/tokenizer.h"
#include "util/log.h"

namespace fourbit {

struct LoadedModel {
    LoadedModel(MiniMaxM2 model, Tokenizer tokenizer, ChatTemplate chat_template)
        : model(std::move(model)),
          tokenizer(std::move(tokenizer)),
          chat_template(std::move(chat_template)) {}

    MiniMaxM2 model;
    Tokenizer tokenizer;
    ChatTemplate chat_template;
    SamplingParams sampling_defaults;    // generation_config.json
    std::vector<int64_t> eos_token_ids;  // generation_config.json, else config.json
    int64_t max_model_len = 0;
    std::unique_ptr<Engine> engine;  // last: destroyed first, while the model lives
};

struct ServerState {
    explicit ServerState(const ServeOptions& options);

    ServeOptions options;
    RequestLimits limits;
    ApiKeys api_keys;
    ReasoningParser reasoning_parser;
    ToolCallParser tool_call_parser;
    ServerMetrics metrics;  // NOTE: declared before `model`: engine callbacks record into it
    std::unique_ptr<LoadedModel> model_storage;
    std::atomic<const LoadedModel*> model{nullptr};  // set once loaded
    std::atomic<bool> stopping{false};

    // The loaded model, or a 503 ApiError while it loads.
    const LoadedModel& require_model() const;
};

// The generation routes (completion_routes.cpp).
void handle_chat_completions(ServerState& state, const httplib::Request& request,
                             httplib::Response& response);
void handle_completions(ServerState& state, const httplib::Request& request,
                        httplib::Response& response);
// Sets `response` to the error's status and JSON body.
void set_error_response(httplib::Response& response, const ApiError& error);

// Runs a route's `body`, turning every failure into an OpenAI error response: bad input never
// escapes a handler.
template <typename Body>
void guarded(httplib::Response& response, Body&& body) {
    try {
        body();
    } catch (const ApiError& error) {
        set_error_response(response, error);
    } catch (const Error& error) {
        set_error_response(response, ApiError(400, "invalid_request_error", error.what()));
    } catch (const std::bad_alloc&) {
        set_error_response(response, ApiError(500, "server_error", "out of memory"));
    } catch (const std::exception& error) {
        spdlog::error("request failed: {}", error.what());
        set_error_response(response, ApiError(500, "server_error", error.what()));
    }
}

}  // namespace fourbit
