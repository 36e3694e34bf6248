#include "server/generation_session.h"

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "server/api_error.h"

namespace fourbit {

// What the engine thread hands over: events in arrival order, per choice.
struct GenerationSession::Mailbox {
    struct Event {
        size_t choice = 0;
        bool finished = false;
        TokenEvent token;
        FinishEvent finish;
    };
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Event> events;
    // Set by the HTTP thread before it cancels a choice whose stop string matched, so that the
    // metrics count it as "stop" rather than "abort".
    std::unique_ptr<std::atomic<bool>[]> stopped_by_string;

    void post(Event event) {
        {
            std::lock_guard lock(mutex);
            events.push_back(std::move(event));
        }
        ready.notify_one();
    }
};

GenerationSession::GenerationSession(Engine& engine, ServerMetrics& metrics,
                                     const Tokenizer& tokenizer)
    : engine_(engine),
      metrics_(metrics),
      tokenizer_(tokenizer),
      mailbox_(std::make_shared<Mailbox>()) {}

GenerationSession::~GenerationSession() { cancel(); }

void GenerationSession::start(std::vector<ChoicePlan> plans) {
    choices_.clear();
    choices_.reserve(plans.size());
    mailbox_->stopped_by_string = std::make_unique<std::atomic<bool>[]>(plans.size());
    for (ChoicePlan& plan : plans) {
        Choice choice;
        choice.output = std::make_unique<ChoiceOutput>(tokenizer_, plan.output);
        choice.plan = std::move(plan);
        choices_.push_back(std::move(choice));
    }
    for (size_t i = 0; i < choices_.size(); ++i) {
        std::shared_ptr<Mailbox> mailbox = mailbox_;
        ServerMetrics* metrics = &metrics_;
        auto on_token = [mailbox, i](const TokenEvent& token) {
            Mailbox::Event event;
            event.choice = i;
            event.token = token;
            mailbox->post(std::move(event));
        };
        auto on_finish = [mailbox, metrics, i](const FinishEvent& finish) {
            std::string_view reason = finish.reason;
            if (mailbox->stopped_by_string[i].load()) {
                reason = "stop";
            } else if (reason == "cancelled") {
                reason = "abort";
            }
            metrics->record_finished(reason);
            Mailbox::Event event;
            event.choice = i;
            event.finished = true;
            event.finish = finish;
            mailbox->post(std::move(event));
        };
        try {
            choices_[i].engine_id =
                engine_.submit(choices_[i].plan.request, std::move(on_token), std::move(on_finish));
            choices_[i].submitted = true;
        } catch (const Error& error) {
            cancel();
            bad_request("", "{}", error.what());
        }
    }
}

void GenerationSession::cancel() {
    for (Choice& choice : choices_) {
        if (choice.submitted && !choice.engine_done) {
            engine_.cancel(choice.engine_id);
            choice.engine_done = true;  // nothing more is read from it
        }
        if (!choice.ended) {
            choice.ended = true;
            ++ended_;
        }
    }
}

bool GenerationSession::done() const { return ended_ == choices_.size() && ready_.empty(); }

std::optional<ChoiceUpdate> GenerationSession::next(std::chrono::milliseconds timeout) {
    if (ready_.empty() && ended_ < choices_.size()) take(timeout);
    if (ready_.empty()) return std::nullopt;
    ChoiceUpdate update = std::move(ready_.front());
    ready_.pop_front();
    return update;
}

void GenerationSession::take(std::chrono::milliseconds timeout) {
    std::deque<ChoiceUpdate>& updates = ready_;
    std::deque<Mailbox::Event> events;
    {
        std::unique_lock lock(mailbox_->mutex);
        mailbox_->ready.wait_for(lock, timeout, [&] { return !mailbox_->events.empty(); });
        events.swap(mailbox_->events);
    }
    for (Mailbox::Event& event : events) {
        Choice& choice = choices_[event.choice];
        if (event.finished) choice.engine_done = true;
        if (choice.ended) continue;  // tokens past a stop string, or after a cancel
        ChoiceOutput& output = *choice.output;
        if (!event.finished) {
            ChoiceUpdate update;
            update.choice = event.choice;
            update.token_id = event.token.token_id;
            update.delta = output.push_token(event.token.token_id);
            if (choice.plan.request.logprobs) {
                update.logprob = TokenLogprob{event.token.token_id, event.token.logprob,
                                              std::move(event.token.top_logprobs)};
            }
            updates.push_back(std::move(update));
            if (!output.stopped()) continue;
            // The stop string ended the output: the engine need not go on.
            mailbox_->stopped_by_string[event.choice].store(true);
            engine_.cancel(choice.engine_id);
        }
        ChoiceUpdate end;
        end.kind = ChoiceUpdate::Kind::end;
        end.choice = event.choice;
        end.delta = output.finish();
        end.finish_reason = output.finish_reason(event.finished ? event.finish.reason : "stop");
        if (event.finished && event.finish.reason == "error") {
            end.error = event.finish.error.empty() ? "the engine failed" : event.finish.error;
        }
        choice.ended = true;
        ++ended_;
        updates.push_back(std::move(end));
    }
}

}  // namespace fourbit
