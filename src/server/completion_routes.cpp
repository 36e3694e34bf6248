// POST /v1/chat/completions and /v1/completions: validate, build the prompt, submit one engine
// request per choice, then either stream SSE chunks (one per generated token) or answer once
// every choice has ended. A client that goes away cancels its engine requests.
#include <chrono>
#include <ctime>
#include <memory>
#include <span>

#include "server/api_error.h"
#include "server/generation_session.h"
#include "server/peer_connection.h"
#include "server/prompt.h"
#include "server/response_json.h"
#include "server/server_state.h"
#include "util/log.h"

namespace fourbit {

namespace {

using Clock = std::chrono::steady_clock;
using ordered_json = nlohmann::ordered_json;

// How long a waiting handler sleeps between looks at its client and the shutdown flag.
constexpr std::chrono::milliseconds kPollInterval{50};

int64_t count_characters(std::string_view text) {
    int64_t n = 0;
    for (char c : text) n += (static_cast<uint8_t>(c) & 0xc0) != 0x80;
    return n;
}

// One HTTP request's generation, shared by the handler and (when streaming) its content
// provider, which cpp-httplib runs after the handler returns.
struct Generation {
    bool chat = true;
    GenerationSpec spec;
    ResponseHeader header;
    int64_t prompt_tokens = 0;
    std::optional<std::vector<int32_t>> prompt_token_ids;  // return_token_ids (chat)
    std::unique_ptr<GenerationSession> session;
    PeerConnection peer;
    Clock::time_point arrival;
    // Per choice, filled as updates come.
    std::vector<std::vector<int32_t>> token_ids;
    std::vector<std::vector<TokenLogprob>> logprobs;
    std::vector<std::vector<int64_t>> text_offsets;  // completions' logprobs
    std::vector<int64_t> text_characters;
    std::vector<bool> role_sent;
    std::vector<std::string> finish_reasons;
    std::string error;  // the first engine failure

    int64_t completion_tokens() const {
        int64_t total = 0;
        for (const auto& ids : token_ids) total += static_cast<int64_t>(ids.size());
        return total;
    }
    Usage usage() const { return {prompt_tokens, completion_tokens()}; }

    // Records the update; returns the choice's JSON for a streamed chunk.
    ChoiceJson apply(const ChoiceUpdate& update, const Tokenizer& tokenizer) {
        const size_t c = update.choice;
        ChoiceJson choice;
        choice.index = session->plan(c).index;
        if (update.kind == ChoiceUpdate::Kind::token) {
            token_ids[c].push_back(update.token_id);
            choice.token_ids = {update.token_id};
            if (update.logprob) {
                logprobs[c].push_back(*update.logprob);
                text_offsets[c].push_back(text_characters[c]);
                std::span<const TokenLogprob> one(&logprobs[c].back(), 1);
                choice.logprobs = chat ? chat_logprobs_json(tokenizer, one)
                                       : completion_logprobs_json(
                                             tokenizer, one, std::span(&text_offsets[c].back(), 1));
            }
        } else {
            finish_reasons[c] = update.finish_reason;
            if (!update.error.empty() && error.empty()) error = update.error;
            choice.finish_reason = update.finish_reason;
        }
        text_characters[c] += count_characters(update.delta.content);
        if (chat) {
            choice.body = chat_delta_json(update.delta, !role_sent[c]);
            role_sent[c] = true;
        } else {
            choice.body = update.delta.content;
        }
        return choice;
    }

    ordered_json chunk(const std::vector<ChoiceJson>& choices,
                       const std::optional<ordered_json>& usage) const {
        return chat ? chat_chunk_json(header, choices, usage)
                    : completion_chunk_json(header, choices, usage);
    }
};

std::shared_ptr<Generation> make_generation(ServerState& state, const LoadedModel& model, bool chat,
                                            const GenerationSpec& spec,
                                            const httplib::Request& request,
                                            Clock::time_point arrival) {
    auto generation = std::make_shared<Generation>();
    generation->chat = chat;
    generation->spec = spec;
    generation->header = {make_response_id(chat ? "chatcmpl-" : "cmpl-"),
                          static_cast<int64_t>(std::time(nullptr)), spec.model};
    generation->session =
        std::make_unique<GenerationSession>(*model.engine, state.metrics, model.tokenizer);
    generation->arrival = arrival;
    generation->peer = PeerConnection::find(request.local_addr, request.local_port,
                                            request.remote_addr, request.remote_port);
    return generation;
}

void start(Generation& generation, std::vector<ChoicePlan> plans) {
    const size_t n = plans.size();
    generation.token_ids.assign(n, {});
    generation.logprobs.assign(n, {});
    generation.text_offsets.assign(n, {});
    generation.text_characters.assign(n, 0);
    generation.role_sent.assign(n, false);
    generation.finish_reasons.assign(n, "");
    generation.session->start(std::move(plans));
}

// The streamed answer, run by cpp-httplib's content provider on the connection's thread. Returns
// false when the client went away (cpp-httplib then drops the connection).
bool write_stream(ServerState& state, const LoadedModel& model, Generation& generation,
                  httplib::DataSink& sink) {
    GenerationSession& session = *generation.session;
    auto last_write = Clock::now();
    const auto ping_interval = std::chrono::duration<double>(state.options.sse_ping_interval_s);
    auto send = [&](std::string_view text) {
        if (!sink.write(text.data(), text.size())) return false;
        last_write = Clock::now();
        return true;
    };
    auto chunk_usage = [&]() -> std::optional<ordered_json> {
        if (!generation.spec.include_usage) return std::nullopt;
        if (!generation.spec.continuous_usage_stats) return ordered_json(nullptr);
        return usage_json(generation.usage());
    };
    auto next_check = Clock::now() + kPollInterval;
    while (!session.done()) {
        std::optional<ChoiceUpdate> update = session.next(kPollInterval);
        // NOTE: checked on a clock, not only when idle: a busy stream may never be idle.
        if (Clock::now() >= next_check) {
            next_check = Clock::now() + kPollInterval;
            if (state.stopping.load() || generation.peer.closed()) {
                session.cancel();
                return false;
            }
        }
        if (!update) {
            if (Clock::now() - last_write >= ping_interval && !send(kSsePing)) {
                session.cancel();
                return false;
            }
            continue;
        }
        ChoiceJson choice = generation.apply(*update, model.tokenizer);
        if (!generation.error.empty()) {
            session.cancel();
            send(sse_event(error_json(ApiError(500, "server_error", generation.error))));
            send(kSseDone);
            sink.done();
            return true;
        }
        if (!send(sse_event(generation.chunk({choice}, chunk_usage())))) {
            session.cancel();
            return false;
        }
    }
    if (generation.spec.include_usage &&
        !send(sse_event(generation.chunk({}, usage_json(generation.usage()))))) {
        return false;
    }
    if (!send(kSseDone)) return false;
    sink.done();
    state.metrics.record_e2e_latency(
        std::chrono::duration<double>(Clock::now() - generation.arrival).count());
    return true;
}

// The whole answer once every choice has ended.
void write_whole(ServerState& state, const LoadedModel& model, Generation& generation,
                 httplib::Response& response) {
    GenerationSession& session = *generation.session;
    auto next_check = Clock::now() + kPollInterval;
    while (!session.done()) {
        std::optional<ChoiceUpdate> update = session.next(kPollInterval);
        if (update) generation.apply(*update, model.tokenizer);
        if (Clock::now() < next_check) continue;
        next_check = Clock::now() + kPollInterval;
        if (state.stopping.load()) {
            session.cancel();
            throw ApiError(503, "server_error", "the server is shutting down");
        }
        if (generation.peer.closed()) {
            session.cancel();
            spdlog::debug("{}: the client went away; its engine requests are cancelled",
                          generation.header.id);
            throw ApiError(499, "invalid_request_error", "the client closed the connection");
        }
    }
    if (!generation.error.empty()) throw ApiError(500, "server_error", generation.error);
    std::vector<ChoiceJson> choices;
    for (size_t c = 0; c < session.size(); ++c) {
        ChoiceJson choice;
        choice.index = session.plan(c).index;
        choice.finish_reason = generation.finish_reasons[c];
        choice.token_ids = generation.token_ids[c];
        const ChoiceOutput& output = session.output(c);
        if (generation.chat) {
            choice.body = chat_message_json(output.message());
            if (generation.spec.logprobs) {
                choice.logprobs = chat_logprobs_json(model.tokenizer, generation.logprobs[c]);
            }
        } else {
            choice.body = output.text();
            if (generation.spec.logprobs) {
                choice.logprobs = completion_logprobs_json(model.tokenizer, generation.logprobs[c],
                                                           generation.text_offsets[c]);
            }
        }
        choices.push_back(std::move(choice));
    }
    const ordered_json answer =
        generation.chat ? chat_completion_json(generation.header, choices, generation.usage(),
                                               generation.prompt_token_ids)
                        : completion_json(generation.header, choices, generation.usage());
    response.status = 200;
    response.set_content(dump_json(answer), "application/json");
    state.metrics.record_e2e_latency(
        std::chrono::duration<double>(Clock::now() - generation.arrival).count());
}

void respond(ServerState& state, const LoadedModel& model,
             const std::shared_ptr<Generation>& generation, httplib::Response& response) {
    if (!generation->spec.stream) {
        write_whole(state, model, *generation, response);
        return;
    }
    response.status = 200;
    response.set_header("Cache-Control", "no-cache");
    response.set_chunked_content_provider(
        "text/event-stream",
        [&state, &model, generation](size_t, httplib::DataSink& sink) {
            try {
                return write_stream(state, model, *generation, sink);
            } catch (const std::exception& error) {
                spdlog::error("stream failed: {}", error.what());
                generation->session->cancel();
                return false;
            }
        },
        [generation](bool) { generation->session->cancel(); });
}

}  // namespace

void handle_chat_completions(ServerState& state, const httplib::Request& request,
                             httplib::Response& response) {
    const auto arrival = Clock::now();
    guarded(response, [&] {
        const LoadedModel& model = state.require_model();
        const ChatCompletionSpec spec = parse_chat_completion_request(
            parse_request_body(request.body, state.limits), state.limits);
        const ChatPrompt prompt = build_chat_prompt(spec, model.chat_template, model.tokenizer);
        const int64_t prompt_tokens = static_cast<int64_t>(prompt.token_ids.size());
        const int64_t max_tokens =
            resolve_max_tokens(spec.generation.max_tokens, prompt_tokens, model.max_model_len);

        ChoiceOutputOptions output;
        output.parse = true;
        output.parser.reasoning = state.reasoning_parser;
        output.parser.tools = spec.tool_choice.kind == ToolChoiceKind::none
                                  ? ToolCallParser::none
                                  : state.tool_call_parser;
        output.parser.tool_schemas = spec.tool_schemas;
        output.parser.prompt_opens_think = prompt.opens_think;
        output.forced_output = prompt.forced_output;
        output.stop = spec.generation.stop;
        output.include_stop_str_in_output = spec.generation.include_stop_str_in_output;
        output.skip_special_tokens = spec.generation.skip_special_tokens;
        output.parallel_tool_calls = spec.parallel_tool_calls;

        std::vector<ChoicePlan> plans;
        for (int64_t i = 0; i < spec.generation.n; ++i) {
            plans.push_back(
                {i,
                 make_generation_request(spec.generation, prompt.token_ids, max_tokens,
                                         model.sampling_defaults, model.eos_token_ids, i),
                 output});
        }
        auto generation =
            make_generation(state, model, /*chat=*/true, spec.generation, request, arrival);
        generation->prompt_tokens = prompt_tokens;
        if (spec.generation.return_token_ids) generation->prompt_token_ids = prompt.token_ids;
        start(*generation, std::move(plans));
        respond(state, model, generation, response);
    });
}

void handle_completions(ServerState& state, const httplib::Request& request,
                        httplib::Response& response) {
    const auto arrival = Clock::now();
    guarded(response, [&] {
        const LoadedModel& model = state.require_model();
        const CompletionSpec spec =
            parse_completion_request(parse_request_body(request.body, state.limits), state.limits);
        ChoiceOutputOptions output;
        output.parse = false;
        output.stop = spec.generation.stop;
        output.include_stop_str_in_output = spec.generation.include_stop_str_in_output;
        output.skip_special_tokens = spec.generation.skip_special_tokens;

        std::vector<ChoicePlan> plans;
        int64_t prompt_tokens = 0;
        for (size_t p = 0; p < spec.prompts.size(); ++p) {
            const CompletionPrompt& prompt = spec.prompts[p];
            const std::string name =
                spec.prompts.size() == 1 ? "prompt" : fmt::format("prompt[{}]", p);
            const std::vector<int32_t> ids =
                prompt.text ? model.tokenizer.encode(*prompt.text) : prompt.token_ids;
            check_prompt_token_ids(ids, model.model.config().vocab_size, name);
            const int64_t n_ids = static_cast<int64_t>(ids.size());
            const int64_t max_tokens =
                resolve_max_tokens(spec.generation.max_tokens, n_ids, model.max_model_len);
            prompt_tokens += n_ids;
            for (int64_t j = 0; j < spec.generation.n; ++j) {
                plans.push_back(
                    {static_cast<int64_t>(p) * spec.generation.n + j,
                     make_generation_request(spec.generation, ids, max_tokens,
                                             model.sampling_defaults, model.eos_token_ids, j),
                     output});
            }
        }
        auto generation =
            make_generation(state, model, /*chat=*/false, spec.generation, request, arrival);
        generation->prompt_tokens = prompt_tokens;
        start(*generation, std::move(plans));
        respond(state, model, generation, response);
    });
}

}  // namespace fourbit
