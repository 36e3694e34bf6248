// The agentic loop against a scripted OpenAI-compatible server (cpp-httplib in this process):
// streamed tool-call deltas are assembled, checked, answered with the task's simulated results,
// and the conversation goes on until the model stops calling; the report says what was called,
// whether it was valid and expected, and counts tokens from token_ids.
#include <gtest/gtest.h>
#include <httplib.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/agentic_suite.h"

namespace fourbit::bench {
namespace {

using nlohmann::json;

std::string sse(const json& chunk) { return "data: " + chunk.dump() + "\n\n"; }

json delta_chunk(const json& delta, int token_id) {
    return {{"choices", {{{"index", 0}, {"delta", delta}, {"token_ids", {token_id}}}}}};
}

// One streamed tool call, its arguments split over two chunks as servers do.
std::string tool_call_stream(const std::string& name, const std::string& arguments, int index = 0) {
    const std::string half1 = arguments.substr(0, arguments.size() / 2);
    const std::string half2 = arguments.substr(arguments.size() / 2);
    std::string out;
    out += sse(delta_chunk({{"tool_calls",
                             {{{"index", index},
                               {"id", "call_" + name},
                               {"type", "function"},
                               {"function", {{"name", name}, {"arguments", ""}}}}}}},
                           10));
    out += sse(delta_chunk(
        {{"tool_calls", {{{"index", index}, {"function", {{"arguments", half1}}}}}}}, 11));
    out += sse(delta_chunk(
        {{"tool_calls", {{{"index", index}, {"function", {{"arguments", half2}}}}}}}, 12));
    return out;
}

std::string finish(const std::string& reason, int completion_tokens) {
    return sse({{"choices",
                 {{{"index", 0},
                   {"delta", json::object()},
                   {"finish_reason", reason},
                   {"token_ids", json::array()}}}}}) +
           sse({{"choices", json::array()},
                {"usage", {{"prompt_tokens", 50}, {"completion_tokens", completion_tokens}}}}) +
           "data: [DONE]\n\n";
}

class ScriptedServer {
public:
    // `replies[i]` answers the i-th chat request.
    explicit ScriptedServer(std::vector<std::string> replies) : replies_(std::move(replies)) {
        server_.Post("/v1/chat/completions",
                     [this](const httplib::Request& request, httplib::Response& response) {
                         std::lock_guard lock(mutex_);
                         requests_.push_back(json::parse(request.body));
                         const size_t i = requests_.size() - 1;
                         response.set_content(i < replies_.size() ? replies_[i] : finish("stop", 0),
                                              "text/event-stream");
                     });
        port_ = server_.bind_to_any_port("127.0.0.1");
        // NOTE: the socket already listens after bind, so requests queue until the loop runs.
        thread_ = std::thread([this] { server_.listen_after_bind(); });
    }
    ~ScriptedServer() {
        server_.stop();
        thread_.join();
    }
    Endpoint endpoint() const {
        return parse_endpoint("http://127.0.0.1:" + std::to_string(port_) + "/v1", "");
    }
    std::vector<json> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    httplib::Server server_;
    std::vector<std::string> replies_;
    std::vector<json> requests_;
    std::mutex mutex_;
    int port_ = 0;
    std::thread thread_;
};

json suite_with(const std::string& task_id) {
    json suite = json::parse(embedded_agentic_suite());
    json tasks = json::array();
    for (const json& task : suite["tasks"]) {
        if (task["id"] == task_id) tasks.push_back(task);
    }
    suite["tasks"] = tasks;
    return suite;
}

TEST(AgenticReplay, MultiStepToolTaskFeedsResultsBackUntilTheModelAnswers) {
    const json suite = suite_with("meeting_booking_multistep");
    ScriptedServer server({
        tool_call_stream(
            "check_calendar",
            R"({"people": ["alice@example.com", "bob@example.com"], "date": "2026-12-03"})") +
            finish("tool_calls", 3),
        tool_call_stream("book_room", R"({"start": "2026-12-03T10:00", "duration_minutes": 30})") +
            finish("tool_calls", 3),
        // send_invite without its required "title": called, but not valid.
        tool_call_stream(
            "send_invite",
            R"({"people": ["alice@example.com"], "start": "2026-12-03T10:00", "room": "Orion"})") +
            finish("tool_calls", 3),
        sse(delta_chunk({{"role", "assistant"}, {"content", "Booked."}}, 20)) +
            sse(delta_chunk({{"content", " Done"}}, 21)) + finish("stop", 2),
    });
    const json report = run_agentic_suite(server.endpoint(), suite, {"tiny", 100});
    ASSERT_EQ(report["tasks"].size(), 1u);
    const json& task = report["tasks"][0];
    EXPECT_EQ(task["errors"], json::array());
    EXPECT_EQ(task["turns"], 4);
    EXPECT_EQ(task["completion_tokens"], 11);
    EXPECT_EQ(task["generated_tokens"], 11);  // from token_ids: 3 + 3 + 3 + 2
    EXPECT_EQ(task["token_count_source"], "token_ids");
    ASSERT_EQ(task["tool_calls"].size(), 3u);
    EXPECT_EQ(task["tool_calls"][0]["name"], "check_calendar");
    EXPECT_TRUE(task["tool_calls"][0]["valid"].get<bool>());
    EXPECT_TRUE(task["tool_calls"][1]["valid"].get<bool>());
    EXPECT_FALSE(task["tool_calls"][2]["valid"].get<bool>());
    EXPECT_EQ(task["tool_calls"][2]["problem"], "missing required argument title");
    EXPECT_FALSE(task["tool_calls_valid"].get<bool>());
    EXPECT_TRUE(task["tool_calls_expected"].get<bool>());
    EXPECT_EQ(task["finish_reasons"], json({"tool_calls", "tool_calls", "tool_calls", "stop"}));

    const std::vector<json> requests = server.requests();
    ASSERT_EQ(requests.size(), 4u);
    EXPECT_EQ(requests[0]["max_tokens"], 100);  // the cap beats the suite's 16384
    EXPECT_EQ(requests[0]["tool_choice"], "auto");
    EXPECT_EQ(requests[0]["tools"].size(), 3u);
    EXPECT_EQ(requests[0]["seed"], 1234);
    // The second request carries the first call and its simulated result.
    const json& messages = requests[1]["messages"];
    ASSERT_EQ(messages.size(), 3u);
    EXPECT_EQ(messages[1]["role"], "assistant");
    EXPECT_EQ(messages[1]["tool_calls"][0]["id"], "call_check_calendar");
    EXPECT_EQ(json::parse(
                  messages[1]["tool_calls"][0]["function"]["arguments"].get<std::string>())["date"],
              "2026-12-03");
    EXPECT_EQ(messages[2]["role"], "tool");
    EXPECT_EQ(messages[2]["tool_call_id"], "call_check_calendar");
    EXPECT_EQ(json::parse(messages[2]["content"].get<std::string>()),
              suite["tasks"][0]["tool_results"]["check_calendar"]);
    EXPECT_EQ(requests[3]["messages"].size(), 7u);
}

TEST(AgenticReplay, ParallelCallsInOneTurnAndTheTrap) {
    ScriptedServer parallel({
        tool_call_stream("get_stock_price", R"({"ticker": "AAPL"})", 0) +
            tool_call_stream("get_stock_price", R"({"ticker": "NVDA"})", 1) +
            tool_call_stream("get_stock_price", R"({"ticker": "MSFT"})", 2) +
            finish("tool_calls", 9),
        sse(delta_chunk({{"content", "NVDA"}}, 30)) + finish("stop", 1),
    });
    const json report =
        run_agentic_suite(parallel.endpoint(), suite_with("stock_prices_parallel"), {"m", {}});
    const json& task = report["tasks"][0];
    EXPECT_EQ(task["tool_calls"].size(), 3u);
    EXPECT_TRUE(task["tool_calls_valid"].get<bool>());
    EXPECT_TRUE(task["tool_calls_expected"].get<bool>());
    EXPECT_EQ(parallel.requests()[1]["messages"].size(),
              1u + 1u + 3u);  // user, assistant, 3 tool results

    // The trap offers a tool and expects none; calling it anyway is valid but not expected.
    ScriptedServer trap(
        {tool_call_stream("get_weather", R"({"city": "Paris"})") + finish("tool_calls", 3)});
    const json trapped =
        run_agentic_suite(trap.endpoint(), suite_with("trap_answer_directly"), {"m", {}});
    EXPECT_TRUE(trapped["tasks"][0]["tool_calls_valid"].get<bool>());
    EXPECT_FALSE(trapped["tasks"][0]["tool_calls_expected"].get<bool>());
    EXPECT_EQ(trapped["tasks"][0]["turns"], 1);  // max_turns 1: the result is not fed back
}

TEST(AgenticReplay, ServerErrorsAreReportedPerTask) {
    const json report = run_agentic_suite(parse_endpoint("http://127.0.0.1:1/v1", ""),
                                          suite_with("chat_capital"), {"m", {}});
    EXPECT_EQ(report["tasks"][0]["errors"].size(), 1u);
    EXPECT_EQ(report["totals"]["failed_tasks"], 1);
    // A trap that never got an answer has not been passed.
    const json trap = run_agentic_suite(parse_endpoint("http://127.0.0.1:1/v1", ""),
                                        suite_with("trap_answer_directly"), {"m", {}});
    EXPECT_TRUE(trap["tasks"][0]["tool_calls_expected"].is_null());
}

}  // namespace
}  // namespace fourbit::bench
