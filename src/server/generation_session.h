// One HTTP request's engine requests (n choices per prompt) and their outputs. The engine's
// callbacks only append to a mailbox under a short lock (they run on the engine thread); the
// HTTP thread drains it, runs each choice's output pipeline and hands out one update per
// generated token and one per ended choice. Destroying the session cancels whatever still
// runs, so a handler that returns early (client gone, error) never leaves work in the engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "server/choice_output.h"
#include "server/metrics.h"
#include "server/response_json.h"

namespace fourbit {

struct ChoicePlan {
    int64_t index = 0;  // the choice's index in the answer
    GenerationRequest request;
    ChoiceOutputOptions output;
};

struct ChoiceUpdate {
    enum class Kind { token, end };
    Kind kind = Kind::token;
    size_t choice = 0;  // position in the plans
    // token: the generated id, what it adds to the output, its logprob when asked for.
    int32_t token_id = 0;
    std::optional<TokenLogprob> logprob;
    // token and end: the output's delta (end: what was held back).
    MessageDelta delta;
    // end: OpenAI's finish_reason ("error" with `error` set when the engine failed).
    std::string finish_reason;
    std::string error;
};

class GenerationSession {
public:
    GenerationSession(Engine& engine, ServerMetrics& metrics, const Tokenizer& tokenizer);
    ~GenerationSession();
    GenerationSession(const GenerationSession&) = delete;
    GenerationSession& operator=(const GenerationSession&) = delete;

    // Submits every plan. When the engine refuses one (an Error), those already submitted are
    // cancelled and a 400 ApiError carries the engine's message.
    void start(std::vector<ChoicePlan> plans);
    // The next update, waiting at most `timeout` for the engine; nullopt when none came.
    std::optional<ChoiceUpdate> next(std::chrono::milliseconds timeout);
    // Every choice has ended (its end update was handed out).
    bool done() const;
    // Stops every choice still running in the engine (the client went away).
    void cancel();

    size_t size() const { return choices_.size(); }
    const ChoicePlan& plan(size_t choice) const { return choices_[choice].plan; }
    const ChoiceOutput& output(size_t choice) const { return *choices_[choice].output; }

private:
    struct Mailbox;
    struct Choice {
        ChoicePlan plan;
        std::unique_ptr<ChoiceOutput> output;
        uint64_t engine_id = 0;
        bool submitted = false;
        bool ended = false;        // its end update was made
        bool engine_done = false;  // the engine's finish callback ran
    };
    // Waits up to `timeout` for engine events and turns them into updates.
    void take(std::chrono::milliseconds timeout);

    Engine& engine_;
    ServerMetrics& metrics_;
    const Tokenizer& tokenizer_;
    std::shared_ptr<Mailbox> mailbox_;  // shared with the engine's callbacks, which may outlive us
    std::vector<Choice> choices_;
    std::deque<ChoiceUpdate> ready_;
    size_t ended_ = 0;
};

}  // namespace fourbit
