#include "bench/api_client.h"

// NOTE: Debian's cpp-httplib must be compiled with its pkg-config -D flags (src/server/CMakeLists).
#include <httplib.h>

#include <chrono>
#include <regex>

#include "util/error.h"

namespace fourbit::bench {

using nlohmann::json;

namespace {

constexpr time_t kReadTimeoutS = 3600;  // a long prefill on a slow server is not a failure

bool non_empty_text(const json& value) {
    return value.is_string() && !value.get_ref<const std::string&>().empty();
}

}  // namespace

Endpoint parse_endpoint(const std::string& base_url, const std::string& api_key) {
    static const std::regex pattern(R"(^(https?://[^/\s]+)(/[^\s]*)?$)");
    std::smatch match;
    if (!std::regex_match(base_url, match, pattern)) {
        fail("--base-url {}: expected http(s)://host[:port][/path], e.g. http://127.0.0.1:8000/v1",
             base_url);
    }
    std::string prefix = match[2].str();
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    return {match[1].str(), prefix, api_key};
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::optional<std::string_view> SseDecoder::data_payload(std::string_view line) {
    if (line.substr(0, 5) != "data:") return std::nullopt;
    std::string_view data = line.substr(5);
    while (!data.empty() && data.front() == ' ') data.remove_prefix(1);
    if (data.empty() || data == "[DONE]") return std::nullopt;
    return data;
}

void record_chunk(RecordedStream& stream, const json& chunk, double time_s) {
    if (!chunk.is_object()) return;
    if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
        if (auto p = usage->find("prompt_tokens"); p != usage->end() && p->is_number_integer()) {
            stream.usage_prompt_tokens = p->get<int64_t>();
        }
        if (auto c = usage->find("completion_tokens");
            c != usage->end() && c->is_number_integer()) {
            stream.usage_completion_tokens = c->get<int64_t>();
        }
    }
    auto choices = chunk.find("choices");
    if (choices == chunk.end() || !choices->is_array() || choices->empty()) return;
    if (!stream.first_response_s) stream.first_response_s = time_s;
    const json& choice = (*choices)[0];
    if (!choice.is_object()) return;
    int64_t n_token_ids = -1;
    if (auto ids = choice.find("token_ids"); ids != choice.end() && ids->is_array()) {
        n_token_ids = static_cast<int64_t>(ids->size());
    }
    bool has_output = n_token_ids > 0;
    if (auto delta = choice.find("delta"); delta != choice.end() && delta->is_object()) {
        for (const char* key : {"content", "reasoning_content", "reasoning"}) {
            if (auto text = delta->find(key); text != delta->end() && non_empty_text(*text)) {
                has_output = true;
            }
        }
        if (auto calls = delta->find("tool_calls");
            calls != delta->end() && calls->is_array() && !calls->empty()) {
            has_output = true;
        }
    }
    if (!has_output) return;
    if (!stream.first_token_s) stream.first_token_s = time_s;
    stream.chunks.push_back({time_s, n_token_ids});
}

struct ApiClient::Connection {
    explicit Connection(const Endpoint& endpoint) : client(endpoint.scheme_host_port) {
        client.set_connection_timeout(10);
        client.set_read_timeout(kReadTimeoutS);
        client.set_write_timeout(60);
        // Connections are reused, as llama-benchy's aiohttp session reuses them, so a request's
        // TTFR holds no TCP handshake after the first.
        client.set_keep_alive(true);
        if (!endpoint.api_key.empty()) {
            headers.emplace("Authorization", "Bearer " + endpoint.api_key);
        }
    }
    httplib::Client client;
    httplib::Headers headers;
};

ApiClient::ApiClient(const Endpoint& endpoint)
    : endpoint_(endpoint), connection_(std::make_unique<Connection>(endpoint)) {}

ApiClient::~ApiClient() = default;

std::string ApiClient::url(const std::string& path, bool under_prefix) const {
    return endpoint_.scheme_host_port + (under_prefix ? endpoint_.path_prefix : "") + path;
}

namespace {

json parse_answer(const httplib::Result& result, const std::string& url) {
    if (!result) fail("{}: {}", url, httplib::to_string(result.error()));
    if (result->status != 200) fail("{}: HTTP {}: {}", url, result->status, result->body);
    try {
        return json::parse(result->body);
    } catch (const json::exception& error) {
        fail("{}: the answer is not JSON ({})", url, error.what());
    }
}

}  // namespace

json ApiClient::post_json(const std::string& path, const json& body, bool under_prefix) {
    auto result = connection_->client.Post((under_prefix ? endpoint_.path_prefix : "") + path,
                                           connection_->headers, body.dump(), "application/json");
    return parse_answer(result, url(path, under_prefix));
}

json ApiClient::get_json(const std::string& path) {
    auto result = connection_->client.Get(endpoint_.path_prefix + path, connection_->headers);
    return parse_answer(result, url(path));
}

RecordedStream ApiClient::stream_chat(const json& body, const ChunkCallback& on_chunk) {
    RecordedStream stream;
    httplib::Request request;
    request.method = "POST";
    request.path = endpoint_.path_prefix + "/chat/completions";
    request.headers = connection_->headers;
    request.set_header("Content-Type", "application/json");
    request.body = body.dump();
    int status = 0;
    std::string error_body;
    SseDecoder decoder;
    request.response_handler = [&status](const httplib::Response& response) {
        status = response.status;
        return true;
    };
    request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
        const double time_s = now_s();
        if (status != 200) {
            error_body.append(data, size);
            return true;
        }
        decoder.feed(std::string_view(data, size), [&](std::string_view payload) {
            json chunk = json::parse(payload, nullptr, /*allow_exceptions=*/false);
            if (chunk.is_discarded()) return;  // as llama-benchy: a bad line is skipped
            if (chunk.contains("error") && stream.error.empty()) {
                stream.error = "error event: " + chunk["error"].dump();
            }
            record_chunk(stream, chunk, time_s);
            if (on_chunk) on_chunk(chunk);
        });
        return true;
    };
    stream.start_s = now_s();
    auto result = connection_->client.send(request);
    stream.end_s = now_s();
    if (!result) {
        stream.error =
            fmt::format("{}: {}", url("/chat/completions"), httplib::to_string(result.error()));
    } else if (status != 200) {
        stream.error = fmt::format("{}: HTTP {}: {}", url("/chat/completions"), status,
                                   error_body.substr(0, 500));
    }
    return stream;
}

double ApiClient::models_latency_s() {
    double headers_s = 0;
    const double start = now_s();
    auto result = connection_->client.Get(
        endpoint_.path_prefix + "/models", connection_->headers,
        [&](const httplib::Response&) {
            headers_s = now_s();
            return true;
        },
        [](const char*, size_t) { return true; });
    if (!result || result->status != 200) {
        fail(
            "{}: the latency probe failed ({})", url("/models"),
            result ? "HTTP " + std::to_string(result->status) : httplib::to_string(result.error()));
    }
    return headers_s - start;
}

double ApiClient::generation_latency_s(const std::string& model) {
    const json body = {{"model", model},
                       {"messages", json::array({{{"role", "user"}, {"content", "hello"}}})},
                       {"max_tokens", 1},
                       {"stream", true}};
    double first_bytes_s = 0;
    httplib::Request request;
    request.method = "POST";
    request.path = endpoint_.path_prefix + "/chat/completions";
    request.headers = connection_->headers;
    request.set_header("Content-Type", "application/json");
    request.body = body.dump();
    request.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
        if (first_bytes_s == 0) first_bytes_s = now_s();
        return true;
    };
    const double start = now_s();
    auto result = connection_->client.send(request);
    if (!result || result->status != 200 || first_bytes_s == 0) {
        fail("{}: the generation latency probe failed", url("/chat/completions"));
    }
    return first_bytes_s - start;
}

}  // namespace fourbit::bench
