// The benchmark's HTTP side: an OpenAI-compatible endpoint (base URL with its /v1, API key),
// plain JSON requests, streamed chat completions recorded chunk by chunk with their arrival
// times, and the latency probes. One ApiClient per thread (cpp-httplib clients are not shared).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "bench/stream_metrics.h"

namespace fourbit::bench {

// "http://host:8000/v1" split into what cpp-httplib connects to and the path prefix.
struct Endpoint {
    std::string scheme_host_port;  // "http://host:8000"
    std::string path_prefix;       // "/v1" (no trailing slash; may be empty)
    std::string api_key;           // sent as `Authorization: Bearer KEY` when non-empty
};
// An Error naming `base_url` when it is not http(s)://host[:port][/path].
Endpoint parse_endpoint(const std::string& base_url, const std::string& api_key);

// Seconds on one steady clock shared by every recorded time.
double now_s();

// Splits an SSE byte stream into the payloads of its `data:` lines, whatever the read sizes;
// comments (`: ping`), blank lines, other fields and `data: [DONE]` are skipped.
class SseDecoder {
public:
    template <typename OnData>
    void feed(std::string_view bytes, OnData&& on_data) {
        pending_.append(bytes);
        size_t line_start = 0;
        for (size_t newline; (newline = pending_.find('\n', line_start)) != std::string::npos;
             line_start = newline + 1) {
            std::string_view line(pending_.data() + line_start, newline - line_start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (auto data = data_payload(line)) on_data(*data);
        }
        pending_.erase(0, line_start);
    }

private:
    static std::optional<std::string_view> data_payload(std::string_view line);
    std::string pending_;
};

// Folds one parsed chunk of a chat completion stream, arrived at `time_s`, into `stream`:
// usage, first response, and output (content, reasoning, tool-call deltas or token ids) with its
// token_ids count.
void record_chunk(RecordedStream& stream, const nlohmann::json& chunk, double time_s);

class ApiClient {
public:
    explicit ApiClient(const Endpoint& endpoint);
    ~ApiClient();

    // POST {prefix}{path} (or {path} at the server's root: vLLM and fourbit serve /tokenize
    // there) with a JSON body; the parsed JSON answer, or an Error naming the URL and the status
    // and body the server sent.
    nlohmann::json post_json(const std::string& path, const nlohmann::json& body,
                             bool under_prefix = true);
    // GET {prefix}{path}; as post_json.
    nlohmann::json get_json(const std::string& path);

    // Streams a chat completion (`body` must ask for stream), recording every chunk; `on_chunk`
    // (optional) sees each parsed chunk too. Failures land in RecordedStream::error, not thrown.
    using ChunkCallback = std::function<void(const nlohmann::json& chunk)>;
    RecordedStream stream_chat(const nlohmann::json& body, const ChunkCallback& on_chunk = {});

    // Seconds to the response headers of GET {prefix}/models ("api" latency).
    double models_latency_s();
    // Seconds to the first bytes of a streamed 1-token chat request ("generation" latency).
    double generation_latency_s(const std::string& model);

    std::string url(const std::string& path, bool under_prefix = true) const;

private:
    Endpoint endpoint_;
    struct Connection;
    std::unique_ptr<Connection> connection_;
};

}  // namespace fourbit::bench
