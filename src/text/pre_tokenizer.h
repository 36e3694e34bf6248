// The pre-tokenizer's parts: PCRE2 patterns (UTF, Unicode properties, JIT), Hugging Face's
// Split with its five delimiter behaviours, and the NFC normalizer. Internal to the tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;
struct pcre2_real_jit_stack_8;

namespace fourbit::text_detail {

// One thread's PCRE2 match state: match data, and a JIT stack big enough for long pieces.
class MatchScratch {
public:
    MatchScratch();
    ~MatchScratch();
    MatchScratch(const MatchScratch&) = delete;
    MatchScratch& operator=(const MatchScratch&) = delete;

private:
    friend class Regex;
    pcre2_real_match_data_8* data_ = nullptr;
    pcre2_real_match_context_8* context_ = nullptr;
    pcre2_real_jit_stack_8* jit_stack_ = nullptr;
};

// A compiled pattern, immutable and shared by every thread.
class Regex {
public:
    // Oniguruma-syntax patterns of tokenizer.json compile as PCRE2 with PCRE2_UTF | PCRE2_UCP
    // (so \s, \w and (?i) follow Unicode); `literal` takes `pattern` as plain text. Error
    // naming `where` when PCRE2 rejects it.
    static Regex compile(std::string_view pattern, bool literal, const std::string& where);

    // The first match in `subject` at or after byte `start` (a character boundary); false
    // when none. `subject` must be valid UTF-8 (it is not checked again).
    bool find(std::string_view subject, size_t start, MatchScratch& scratch, size_t* match_start,
              size_t* match_end) const;

private:
    std::shared_ptr<pcre2_real_code_8> code_;
    bool jit_ = false;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct SplitStep {
    Regex regex;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
};

// Byte length of the UTF-8 character that starts with `lead`.
inline size_t char_length(uint8_t lead) {
    return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

// Calls emit(piece) for each piece Split makes of `subject`, in order, as Hugging Face does:
// the pattern's matches and the gaps between them (a match that is empty right after
// another match is skipped, as Rust's find_iter does), `invert` swapping which is which, the
// behaviour deciding what is dropped or merged, and empty pieces dropped.
// NOTE: emit may run other patterns on the same scratch: offsets are copied out first.
template <typename Emit>
void split_pieces(const SplitStep& step, std::string_view subject, MatchScratch& scratch,
                  Emit&& emit) {
    const SplitBehavior behavior = step.behavior;
    bool has_pending = false;
    size_t pending_start = 0, pending_end = 0;
    bool previous_match = false;
    auto out = [&](size_t start, size_t end) {
        if (end > start) emit(subject.substr(start, end - start));
    };
    auto span = [&](size_t start, size_t end, bool is_match) {
        if (step.invert) is_match = !is_match;
        switch (behavior) {
            case SplitBehavior::Isolated:
                out(start, end);
                break;
            case SplitBehavior::Removed:
                if (!is_match) out(start, end);
                break;
            case SplitBehavior::Contiguous:
            case SplitBehavior::MergedWithPrevious: {
                const bool extend = has_pending && (behavior == SplitBehavior::Contiguous
                                                        ? is_match == previous_match
                                                        : is_match && !previous_match);
                if (extend) {
                    pending_end = end;
                } else {
                    if (has_pending) out(pending_start, pending_end);
                    has_pending = true;
                    pending_start = start;
                    pending_end = end;
                }
                previous_match = is_match;
                break;
            }
            case SplitBehavior::MergedWithNext:
                // A pending match joins the span after it when that one is not a match.
                if (has_pending) {
                    has_pending = false;
                    if (!is_match) {
                        out(pending_start, end);
                        break;
                    }
                    out(pending_start, pending_end);
                }
                if (is_match) {
                    has_pending = true;
                    pending_start = start;
                    pending_end = end;
                } else {
                    out(start, end);
                }
                break;
        }
    };

    const size_t n = subject.size();
    size_t search_from = 0, previous_end = 0;
    bool have_last_match = false;
    size_t last_match_end = 0;
    size_t match_start = 0, match_end = 0;
    while (search_from <= n &&
           step.regex.find(subject, search_from, scratch, &match_start, &match_end)) {
        if (match_start == match_end) {
            search_from = match_end < n
                              ? match_end + char_length(static_cast<uint8_t>(subject[match_end]))
                              : n + 1;
            if (have_last_match && last_match_end == match_end) continue;
        } else {
            search_from = match_end;
        }
        have_last_match = true;
        last_match_end = match_end;
        if (previous_end != match_start) span(previous_end, match_start, false);
        span(match_start, match_end, true);
        previous_end = match_end;
    }
    if (previous_end != n) span(previous_end, n, false);
    if (has_pending) out(pending_start, pending_end);
}

// Whether NFC could change `text` (valid UTF-8): only code points from U+0300 up can.
bool may_need_nfc(std::string_view text);

// Writes NFC(`text`) (valid UTF-8) into `out`; `buffer` is scratch space kept between calls.
void nfc(std::string_view text, std::string& out, std::vector<int32_t>& buffer);

}  // namespace fourbit::text_detail
