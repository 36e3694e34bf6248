// Stop strings on streamed text: the output ends just before the first place any stop string
// appears, wherever token boundaries fall. Text that could be the start of a stop string is held
// back until the next piece decides; everything else passes at once (ordinary text is never
// delayed).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fourbit {

class StopStringMatcher {
public:
    // Empty strings in `stops` are ignored. `include_stop`: the matched string stays in the output.
    explicit StopStringMatcher(std::vector<std::string> stops, bool include_stop = false);

    struct Result {
        std::string text;      // what may be emitted now
        bool matched = false;  // a stop string ended the output: nothing more is taken
    };
    // The next piece of text. After a match, further pieces are ignored.
    Result push(std::string_view piece);
    // End of the output: the held-back text (it turned out not to be a stop string).
    std::string flush();
    bool matched() const { return matched_; }

private:
    std::vector<std::string> stops_;
    bool include_stop_;
    bool matched_ = false;
    std::string held_;  // a suffix of the text so far that is a proper prefix of a stop string
};

}  // namespace fourbit
