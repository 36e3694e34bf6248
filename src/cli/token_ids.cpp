#include <charconv>

#include "cli/commands.h"
#include "util/error.h"

namespace fourbit {

std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& flag) {
    std::vector<int32_t> ids;
    size_t begin = 0;
    while (begin <= text.size()) {
        size_t end = text.find(',', begin);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(begin, end - begin);
        int32_t id = 0;
        auto [stop, error] = std::from_chars(item.data(), item.data() + item.size(), id);
        if (item.empty() || error != std::errc() || stop != item.data() + item.size() || id < 0) {
            fail("{}: '{}' is not a token id (expected comma-separated non-negative integers)",
                 flag, item);
        }
        ids.push_back(id);
        begin = end + 1;
    }
    return ids;
}

}  // namespace fourbit
