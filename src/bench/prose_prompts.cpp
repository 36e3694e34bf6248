#include "bench/prose_prompts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace fourbit {
namespace assets {  // compiled into fourbit_text by fourbit_embed_file (src/text/CMakeLists.txt)
extern const char tokenizer_corpus[];
extern const unsigned long tokenizer_corpus_size;
}  // namespace assets

namespace bench {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

std::string markdown_prose(std::string_view markdown) {
    std::string out;
    bool in_code = false;
    size_t start = 0;
    while (start <= markdown.size()) {
        size_t end = markdown.find('\n', start);
        if (end == std::string_view::npos) end = markdown.size();
        std::string_view raw = markdown.substr(start, end - start);
        start = end + 1;
        std::string_view line = trim(raw);
        if (line.substr(0, 3) == "```") {
            in_code = !in_code;
            continue;
        }
        if (in_code || line.empty() || line.front() == '|' || line.front() == '#' ||
            raw.substr(0, 4) == "    ") {
            continue;
        }
        if (!out.empty()) out.push_back(' ');
        out.append(line);
    }
    return out;
}

const std::string& embedded_prose() {
    static const std::string prose =
        markdown_prose(std::string_view(assets::tokenizer_corpus, assets::tokenizer_corpus_size));
    return prose;
}

size_t PromptCalibration::chars_for(int64_t tokens) const {
    if (tokens <= 0) return 0;
    return static_cast<size_t>(std::llround(double(tokens) / tokens_per_char));
}

ProseSource::ProseSource(std::string prose, uint64_t seed) : prose_(std::move(prose)), rng_(seed) {
    FOURBIT_ASSERT(prose_.size() > 1000, "the benchmark prose is too short");
}

std::string ProseSource::text_at(size_t start, size_t chars) const {
    std::string out;
    out.reserve(chars + 64);
    size_t at = start;
    while (out.size() < chars) {
        const size_t take = std::min(chars - out.size(), prose_.size() - at);
        out.append(prose_, at, take);
        at += take;
        if (at == prose_.size()) {
            out.push_back(' ');
            at = 0;
        }
    }
    // Finish the word the cut fell into, so no half word ends the prompt.
    while (at < prose_.size() && prose_[at] != ' ' && out.size() < chars + 32) {
        out.push_back(prose_[at++]);
    }
    return std::string(trim(out));
}

std::string ProseSource::slice(size_t chars) {
    if (chars == 0) return {};
    size_t start = std::uniform_int_distribution<size_t>(0, prose_.size() - 1)(rng_);
    while (start > 0 && prose_[start - 1] != ' ') --start;  // back to a word start
    return text_at(start, chars);
}

std::string ProseSource::prefix(size_t chars) const { return text_at(0, chars); }

std::string ProseSource::unique_suffix() { return fmt::format(" {:016x}{:016x}", rng_(), rng_()); }

}  // namespace bench
}  // namespace fourbit
