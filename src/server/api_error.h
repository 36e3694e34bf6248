// Errors the HTTP API reports: an HTTP status with OpenAI's error object
// {"error": {"message", "type", "param", "code"}}. Request validation throws them; the routes
// turn them into responses (response_json.h).
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

#include "util/error.h"

namespace fourbit {

class ApiError : public Error {
public:
    ApiError(int status, std::string type, const std::string& message, std::string param = "",
             std::string code = "")
        : Error(message),
          status(status),
          type(std::move(type)),
          param(std::move(param)),
          code(std::move(code)) {}

    int status;
    std::string type;   // "invalid_request_error", "authentication_error", ...
    std::string param;  // the offending request field ("" when none)
    std::string code;   // a machine-readable reason ("" when none)
};

// 400 invalid_request_error naming `param`.
template <typename... Args>
[[noreturn]] void bad_request(std::string param, fmt::format_string<Args...> format,
                              Args&&... args) {
    throw ApiError(400, "invalid_request_error", fmt::format(format, std::forward<Args>(args)...),
                   std::move(param));
}

}  // namespace fourbit
