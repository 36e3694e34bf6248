// API keys (--api-key, repeatable): requests carry `Authorization: Bearer <key>`. Keys are
// compared in time independent of where they differ, so a client cannot guess one byte by byte.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fourbit {

// Whether a == b, reading every byte of `candidate` whatever the outcome (the time depends only
// on the candidate's length, which the client knows).
bool constant_time_equal(std::string_view secret, std::string_view candidate);

class ApiKeys {
public:
    explicit ApiKeys(std::vector<std::string> keys);
    // No keys: every request is let in.
    bool enabled() const { return !keys_.empty(); }
    // `authorization` is the header's value ("Bearer <key>"; the scheme is case-insensitive).
    // Every key is compared, so the time does not say which one matched.
    bool accepts(std::string_view authorization) const;

private:
    std::vector<std::string> keys_;
};

}  // namespace fourbit
