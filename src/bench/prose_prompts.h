// Benchmark prompts from real prose (the corpus the binary carries, models/tokenizer_corpus.txt,
// with code blocks, tables and headings left out), so speculative decoding and prefix caches
// see realistic text, never random tokens; sized in the server's own tokens by calibration.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace fourbit::bench {

// The prose of a Markdown text on one line: paragraphs and list items joined by spaces;
// fenced code, table rows, headings and indented blocks dropped.
std::string markdown_prose(std::string_view markdown);
// markdown_prose of the embedded corpus.
const std::string& embedded_prose();

// How the server counts a prompt: tokens per character of this prose, and the tokens its chat
// template adds around a user message alone (user) and around a system message followed by a
// one-character user message (context). Measured with 1-token probes (see GridRunner).
// `method`: "tokenize" when prompts are cut from the prose's token ids (the server's /tokenize
// and /detokenize, exact), "characters" when sized by tokens_per_char (any server, about ±10%).
struct PromptCalibration {
    std::string method = "characters";
    double tokens_per_char = 0.25;
    int64_t user_overhead = 0;
    int64_t context_overhead = 0;
    // Characters of prose that the server counts as about `tokens` tokens.
    size_t chars_for(int64_t tokens) const;
};

// Slices of the prose starting at random word boundaries (wrapping around when the prose is
// shorter than asked), from a seeded generator so a run can be repeated.
class ProseSource {
public:
    explicit ProseSource(std::string prose, uint64_t seed = 1);
    // About `chars` characters, cut at word boundaries; empty for 0.
    std::string slice(size_t chars);
    // The first `chars` characters from the start (calibration uses nested prefixes).
    std::string prefix(size_t chars) const;
    // " " and 32 random hex digits: makes a prompt unique (--no-cache).
    std::string unique_suffix();

private:
    std::string text_at(size_t start, size_t chars) const;
    std::string prose_;
    std::mt19937_64 rng_;
};

}  // namespace fourbit::bench
