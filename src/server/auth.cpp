#include "server/auth.h"

#include <cctype>

namespace fourbit {

bool constant_time_equal(std::string_view secret, std::string_view candidate) {
    if (secret.empty()) return false;
    // volatile: keeps the compiler from ending the loop at the first difference.
    volatile unsigned char difference = secret.size() == candidate.size() ? 0 : 1;
    for (size_t i = 0; i < candidate.size(); ++i) {
        difference =
            difference | static_cast<unsigned char>(secret[i % secret.size()] ^ candidate[i]);
    }
    return difference == 0;
}

ApiKeys::ApiKeys(std::vector<std::string> keys) {
    for (std::string& key : keys) {
        if (!key.empty()) keys_.push_back(std::move(key));
    }
}

bool ApiKeys::accepts(std::string_view authorization) const {
    if (keys_.empty()) return true;
    constexpr std::string_view kScheme = "bearer ";
    if (authorization.size() < kScheme.size()) return false;
    for (size_t i = 0; i < kScheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
    }
    std::string_view candidate = authorization.substr(kScheme.size());
    while (!candidate.empty() && candidate.front() == ' ') candidate.remove_prefix(1);
    while (!candidate.empty() && (candidate.back() == ' ' || candidate.back() == '\t')) {
        candidate.remove_suffix(1);
    }
    bool accepted = false;
    for (const std::string& key : keys_) accepted = constant_time_equal(key, candidate) | accepted;
    return accepted;
}

}  // namespace fourbit
