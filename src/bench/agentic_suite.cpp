#include "bench/agentic_suite.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <map>

#include "util/error.h"
#include "util/progress.h"

namespace fourbit {
namespace assets {  // compiled in by fourbit_embed_file (src/bench/CMakeLists.txt)
extern const char agentic_suite[];
extern const unsigned long agentic_suite_size;
}  // namespace assets

namespace bench {

using nlohmann::json;
using nlohmann::ordered_json;

const std::string& embedded_agentic_suite() {
    static const std::string text(assets::agentic_suite, assets::agentic_suite_size);
    return text;
}

void validate_suite(const json& suite, const std::string& source) {
    if (!suite.is_object()) fail("{}: a suite is a JSON object", source);
    const json& tools = suite.contains("tools") ? suite["tools"] : json::object();
    if (!tools.is_object()) fail("{}: \"tools\" must be an object (name -> tool)", source);
    for (const auto& [name, tool] : tools.items()) {
        if (!tool.is_object() || !tool.contains("parameters") || !tool["parameters"].is_object()) {
            fail("{}: tool {} needs a \"parameters\" JSON schema object", source, name);
        }
    }
    if (!suite.contains("tasks") || !suite["tasks"].is_array() || suite["tasks"].empty()) {
        fail("{}: \"tasks\" must be a non-empty array", source);
    }
    for (size_t i = 0; i < suite["tasks"].size(); ++i) {
        const json& task = suite["tasks"][i];
        const std::string where = fmt::format("{}: tasks[{}]", source, i);
        if (!task.is_object() || !task.contains("id") || !task["id"].is_string()) {
            fail("{}: needs a string \"id\"", where);
        }
        const std::string id = task["id"];
        if (!task.contains("messages") || !task["messages"].is_array() ||
            task["messages"].empty()) {
            fail("{} ({}): \"messages\" must be a non-empty array", where, id);
        }
        for (const char* key : {"tools", "expected_calls"}) {
            if (!task.contains(key)) continue;
            if (!task[key].is_array()) fail("{} ({}): \"{}\" must be an array", where, id, key);
            for (const json& name : task[key]) {
                if (!name.is_string() || !tools.contains(name.get<std::string>())) {
                    fail("{} ({}): \"{}\" names {}, which is not in the suite's tools", where, id,
                         key, name.dump());
                }
            }
        }
        if (task.contains("max_tokens") &&
            (!task["max_tokens"].is_number_integer() || task["max_tokens"].get<int64_t>() < 1)) {
            fail("{} ({}): \"max_tokens\" must be a positive integer", where, id);
        }
        if (task.contains("max_turns") &&
            (!task["max_turns"].is_number_integer() || task["max_turns"].get<int64_t>() < 1)) {
            fail("{} ({}): \"max_turns\" must be a positive integer", where, id);
        }
    }
}

void check_tool_call(ToolCall& call, const json& offered) {
    call.valid = false;
    if (!offered.contains(call.name)) {
        call.problem =
            fmt::format("tool {} was not offered", call.name.empty() ? "\"\"" : call.name);
        return;
    }
    const json arguments = json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
    if (arguments.is_discarded() || !arguments.is_object()) {
        call.problem = "arguments are not a JSON object";
        return;
    }
    const json& schema = offered[call.name]["parameters"];
    if (schema.contains("required") && schema["required"].is_array()) {
        for (const json& required : schema["required"]) {
            if (required.is_string() && !arguments.contains(required.get<std::string>())) {
                call.problem = "missing required argument " + required.get<std::string>();
                return;
            }
        }
    }
    call.problem.clear();
    call.valid = true;
}

namespace {

// The assistant turn as the stream built it: text and the tool calls by their index.
struct TurnOutput {
    std::string content;
    std::map<int64_t, ToolCall> calls;
    std::string finish_reason;

    void add(const json& chunk) {
        if (!chunk.contains("choices") || !chunk["choices"].is_array() ||
            chunk["choices"].empty()) {
            return;
        }
        const json& choice = chunk["choices"][0];
        if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
            finish_reason = choice["finish_reason"];
        }
        if (!choice.contains("delta") || !choice["delta"].is_object()) return;
        const json& delta = choice["delta"];
        if (delta.contains("content") && delta["content"].is_string()) content += delta["content"];
        if (!delta.contains("tool_calls") || !delta["tool_calls"].is_array()) return;
        for (const json& piece : delta["tool_calls"]) {
            ToolCall& call = calls[piece.value("index", int64_t(0))];
            if (piece.contains("id") && piece["id"].is_string()) call.id = piece["id"];
            if (!piece.contains("function") || !piece["function"].is_object()) continue;
            const json& function = piece["function"];
            if (function.contains("name") && function["name"].is_string()) {
                call.name += function["name"].get<std::string>();
            }
            if (function.contains("arguments") && function["arguments"].is_string()) {
                call.arguments += function["arguments"].get<std::string>();
            }
        }
    }
};

json tools_request_json(const json& suite_tools, const json& names) {
    json out = json::array();
    for (const json& name : names) {
        const json& tool = suite_tools[name.get<std::string>()];
        out.push_back({{"type", "function"},
                       {"function",
                        {{"name", name},
                         {"description", tool.value("description", std::string())},
                         {"parameters", tool["parameters"]}}}});
    }
    return out;
}

// Expected when every expected name was called at least as often as listed and nothing else was
// called (an empty list: no call at all, the trap).
bool calls_as_expected(const std::vector<ToolCall>& calls, const json& expected) {
    std::map<std::string, int64_t> wanted, made;
    for (const json& name : expected) wanted[name.get<std::string>()] += 1;
    for (const ToolCall& call : calls) made[call.name] += 1;
    for (const auto& [name, count] : made) {
        if (!wanted.contains(name)) return false;
    }
    for (const auto& [name, count] : wanted) {
        if (made[name] < count) return false;
    }
    return true;
}

ordered_json run_task(ApiClient& client, const json& suite, const json& task,
                      const AgenticOptions& options) {
    const json& suite_tools = suite.contains("tools") ? suite["tools"] : json::object();
    json offered = json::object();
    const json tool_names = task.value("tools", json::array());
    for (const json& name : tool_names)
        offered[name.get<std::string>()] = suite_tools[name.get<std::string>()];
    int64_t max_tokens = task.value("max_tokens", suite.value("max_tokens", int64_t(4096)));
    if (options.max_tokens) max_tokens = std::min(max_tokens, *options.max_tokens);
    const int64_t max_turns = task.value("max_turns", int64_t(1));
    json messages = task["messages"];
    const json sampling = suite.value("sampling", json::object());

    double wall_s = 0, decode_span_s = 0;
    int64_t completion_tokens = 0, prompt_tokens = 0, generated_tokens = 0, decode_tokens = 0;
    std::optional<double> ttft_s, peak_tps;
    std::vector<ToolCall> all_calls;
    std::vector<std::string> finish_reasons, errors;
    bool counted_from_ids = true;
    int64_t turns = 0;
    for (; turns < max_turns;) {
        json body = {{"model", options.model},   {"messages", messages},
                     {"max_tokens", max_tokens}, {"stream", true},
                     {"return_token_ids", true}, {"stream_options", {{"include_usage", true}}}};
        for (const auto& [key, value] : sampling.items()) body[key] = value;
        if (!tool_names.empty()) {
            body["tools"] = tools_request_json(suite_tools, tool_names);
            body["tool_choice"] = "auto";
        }
        TurnOutput output;
        const RecordedStream stream =
            client.stream_chat(body, [&](const json& chunk) { output.add(chunk); });
        turns += 1;
        wall_s += stream.end_s - stream.start_s;
        if (!stream.error.empty()) {
            errors.push_back(stream.error);
            break;
        }
        const RequestMetrics metrics = request_metrics(stream, 0, stream.usage_prompt_tokens);
        const TokenTimes times = token_times(stream);
        if (!ttft_s && metrics.e2e_ttft_s) ttft_s = metrics.e2e_ttft_s;
        if (metrics.peak_tps) peak_tps = std::max(peak_tps.value_or(0), *metrics.peak_tps);
        counted_from_ids = counted_from_ids && metrics.tokens_from_ids;
        completion_tokens += stream.usage_completion_tokens.value_or(0);
        prompt_tokens += stream.usage_prompt_tokens;
        generated_tokens += metrics.generated_tokens;
        if (times.times_s.size() > 1) {
            decode_tokens += decode_token_count(times.times_s);
            decode_span_s += times.times_s.back() - times.times_s.front();
        }
        finish_reasons.push_back(output.finish_reason);
        if (output.calls.empty()) break;
        json assistant = {
            {"role", "assistant"},
            {"content", output.content.empty() ? json(nullptr) : json(output.content)}};
        json call_messages = json::array();
        json tool_messages = json::array();
        for (auto& [index, call] : output.calls) {
            if (call.id.empty()) call.id = fmt::format("call_{}_{}", turns, index);
            check_tool_call(call, offered);
            call_messages.push_back(
                {{"id", call.id},
                 {"type", "function"},
                 {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
            const json results = task.value("tool_results", json::object());
            const json result = results.contains(call.name)
                                    ? results[call.name]
                                    : json{{"error", "no such tool: " + call.name}};
            tool_messages.push_back(
                {{"role", "tool"}, {"tool_call_id", call.id}, {"content", result.dump()}});
            all_calls.push_back(call);
        }
        assistant["tool_calls"] = std::move(call_messages);
        messages.push_back(std::move(assistant));
        for (json& m : tool_messages) messages.push_back(std::move(m));
    }

    ordered_json out;
    out["id"] = task["id"];
    out["category"] = task.value("category", std::string());
    out["turns"] = turns;
    out["wall_s"] = wall_s;
    out["ttft_ms"] = ttft_s ? json(*ttft_s * 1000) : json(nullptr);
    out["prompt_tokens"] = prompt_tokens;
    out["completion_tokens"] = completion_tokens;
    out["generated_tokens"] = generated_tokens;
    out["token_count_source"] = counted_from_ids ? "token_ids" : "chunks";
    out["decode_tps"] =
        decode_span_s > 0 ? json(double(decode_tokens) / decode_span_s) : json(nullptr);
    out["peak_tps"] = peak_tps ? json(*peak_tps) : json(nullptr);
    out["finish_reasons"] = finish_reasons;
    ordered_json calls = ordered_json::array();
    bool all_valid = true;
    for (const ToolCall& call : all_calls) {
        all_valid = all_valid && call.valid;
        calls.push_back({{"name", call.name},
                         {"arguments", call.arguments},
                         {"valid", call.valid},
                         {"problem", call.problem}});
    }
    out["tool_calls"] = std::move(calls);
    out["tool_calls_valid"] = all_valid;
    out["expected_calls"] =
        task.contains("expected_calls") ? task["expected_calls"] : json(nullptr);
    // A task that failed (HTTP error, broken stream) says nothing about the model's calls: a
    // trap task that never got an answer must not count as avoided.
    out["tool_calls_expected"] = task.contains("expected_calls") && errors.empty()
                                     ? json(calls_as_expected(all_calls, task["expected_calls"]))
                                     : json(nullptr);
    out["errors"] = errors;
    return out;
}

std::string number_text(const json& value, const char* format = "{:.2f}") {
    if (!value.is_number()) return "";
    return fmt::format(fmt::runtime(format), value.get<double>());
}

}  // namespace

ordered_json run_agentic_suite(const Endpoint& endpoint, const json& suite,
                               const AgenticOptions& options) {
    ApiClient client(endpoint);
    ordered_json tasks = ordered_json::array();
    Progress progress("agentic suite", suite["tasks"].size(), "tasks");
    double wall_s = 0, decode_sum = 0, peak = 0;
    int64_t decode_count = 0, completion_tokens = 0, failed = 0;
    for (const json& task : suite["tasks"]) {
        ordered_json result = run_task(client, suite, task, options);
        wall_s += result["wall_s"].get<double>();
        completion_tokens += result["completion_tokens"].get<int64_t>();
        if (result["decode_tps"].is_number()) {
            decode_sum += result["decode_tps"].get<double>();
            decode_count += 1;
            peak = std::max(peak, result["decode_tps"].get<double>());
        }
        if (!result["errors"].empty()) {
            failed += 1;
            spdlog::warn("bench: task {} failed: {}", result["id"].get<std::string>(),
                         result["errors"][0].get<std::string>());
        }
        tasks.push_back(std::move(result));
        progress.advance(1);
    }
    progress.finish();
    ordered_json out;
    out["kind"] = "agentic";
    out["version"] = "fourbit bench";
    out["suite"] = suite.value("name", std::string("custom"));
    out["timestamp"] = fmt::format("{:%Y-%m-%d %H:%M:%SZ}", fmt::gmtime(std::time(nullptr)));
    out["model"] = options.model;
    out["base_url"] = client.url("");
    out["max_tokens_cap"] = options.max_tokens ? json(*options.max_tokens) : json(nullptr);
    out["totals"] = {{"wall_s", wall_s},
                     {"completion_tokens", completion_tokens},
                     {"average_decode_tps",
                      decode_count ? json(decode_sum / double(decode_count)) : json(nullptr)},
                     {"peak_decode_tps", decode_count ? json(peak) : json(nullptr)},
                     {"failed_tasks", failed}};
    out["tasks"] = std::move(tasks);
    return out;
}

std::string agentic_markdown(const json& report) {
    std::string out =
        "| task | category | turns | wall (s) | completion tokens | decode t/s | tool calls | "
        "valid | expected |\n|:--|:--|--:|--:|--:|--:|:--|:--|:--|\n";
    for (const json& task : report.at("tasks")) {
        std::vector<std::string> names;
        for (const json& call : task["tool_calls"])
            names.push_back(call["name"].get<std::string>());
        const json& expected = task["tool_calls_expected"];
        out +=
            fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                        task["id"].get<std::string>(), task["category"].get<std::string>(),
                        task["turns"].get<int64_t>(), number_text(task["wall_s"]),
                        task["completion_tokens"].get<int64_t>(), number_text(task["decode_tps"]),
                        names.empty() ? "-" : fmt::format("{}", fmt::join(names, ", ")),
                        names.empty() ? "-" : (task["tool_calls_valid"].get<bool>() ? "yes" : "no"),
                        expected.is_boolean() ? (expected.get<bool>() ? "yes" : "no") : "-");
    }
    const json& totals = report.at("totals");
    out += fmt::format(
        "\nwhole set {} s, {} completion tokens, average decode {} t/s, peak {} t/s"
        "{}\n",
        number_text(totals["wall_s"], "{:.1f}"), totals["completion_tokens"].get<int64_t>(),
        number_text(totals["average_decode_tps"]), number_text(totals["peak_decode_tps"]),
        totals["failed_tasks"].get<int64_t>() > 0
            ? fmt::format(", {} task(s) failed", totals["failed_tasks"].get<int64_t>())
            : "");
    return out;
}

}  // namespace bench
}  // namespace fourbit
