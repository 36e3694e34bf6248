#include "server/stop_strings.h"

#include <algorithm>

namespace fourbit {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops, bool include_stop)
    : include_stop_(include_stop) {
    for (std::string& stop : stops) {
        if (!stop.empty()) stops_.push_back(std::move(stop));
    }
}

StopStringMatcher::Result StopStringMatcher::push(std::string_view piece) {
    Result result;
    if (matched_) return result;
    std::string text = std::move(held_);
    held_.clear();
    text.append(piece);
    if (stops_.empty()) {
        result.text = std::move(text);
        return result;
    }
    // NOTE: the held part never holds a whole stop string, so a match can only end in `piece`;
    // searching all of `text` is still cheap (held_ is shorter than the longest stop string).
    size_t best = std::string::npos, best_length = 0;
    for (const std::string& stop : stops_) {
        const size_t at = text.find(stop);
        if (at == std::string::npos) continue;
        if (at < best || (at == best && stop.size() < best_length)) {
            best = at;
            best_length = stop.size();
        }
    }
    if (best != std::string::npos) {
        matched_ = true;
        result.matched = true;
        result.text = text.substr(0, include_stop_ ? best + best_length : best);
        return result;
    }
    // Hold back the longest suffix that a stop string starts with.
    size_t hold = 0;
    for (const std::string& stop : stops_) {
        const size_t longest = std::min(text.size(), stop.size() - 1);
        for (size_t k = longest; k > hold; --k) {
            if (text[text.size() - k] == stop[0] &&
                std::string_view(text).substr(text.size() - k) ==
                    std::string_view(stop).substr(0, k)) {
                hold = k;
                break;
            }
        }
    }
    held_ = text.substr(text.size() - hold);
    text.resize(text.size() - hold);
    result.text = std::move(text);
    return result;
}

std::string StopStringMatcher::flush() {
    if (matched_) return "";
    std::string rest = std::move(held_);
    held_.clear();
    return rest;
}

}  // namespace fourbit
