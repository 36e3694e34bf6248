// Errors at two levels: `Error` for bad input (a file, a request, a flag) whose message names
// what is wrong and where, and FOURBIT_ASSERT for broken invariants (a bug, not bad input).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace fourbit {

// Bad input. The CLI prints the message and exits non-zero; the server maps it to a 4xx.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] void assertion_failed(const char* condition, const char* file, int line,
                                   const std::string& message);

}  // namespace fourbit

// An invariant of the program itself; failing it is a bug, reported with file and line.
#define FOURBIT_ASSERT(condition, ...)                                                         \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            ::fourbit::assertion_failed(#condition, __FILE__, __LINE__,                        \
                                        ::fmt::format("" __VA_ARGS__));                        \
        }                                                                                      \
    } while (0)
