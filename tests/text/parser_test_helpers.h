// What the parser tests share: the golden cases, running the streaming parser over a split of
// a text while checking the delta contract, and comparing messages.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "text/message_parser.h"

namespace fourbit::parser_test {

// One case of tests/golden/parsers/cases.json.
struct GoldenCase {
    std::string name, note, text;
    ParserOptions options;  // ids from seeded_tool_call_ids(kIdSeed)
    nlohmann::json expected;
};

constexpr uint64_t kIdSeed = 7;

const std::vector<GoldenCase>& golden_cases();
const GoldenCase& golden_case(std::string_view name);

// Streams `chunks` through a StreamingMessageParser and assembles the deltas as a client
// would: content and reasoning concatenated, per index id and name once, arguments
// concatenated. Calls whose arguments never closed (not a JSON object) are left out, as the
// non-streaming message leaves them out. `contract_error` names the first broken rule of the
// delta contract: a first delta of an index without id or name, id or name repeated, an index
// skipped, arguments after the closing brace, a string that is not UTF-8, an unclosed call
// without truncation or more than one.
struct StreamResult {
    ParsedMessage message;
    int unclosed_calls = 0;
    std::string contract_error;
};
StreamResult stream(const std::vector<std::string_view>& chunks, const ParserOptions& options);

// The chunks of `text` cut at `cuts` (sorted positions).
std::vector<std::string_view> split_at(std::string_view text, const std::vector<size_t>& cuts);

// "" when equal, else what differs.
std::string difference(const ParsedMessage& expected, const ParsedMessage& actual);

// The message a case expects (ids taken from `actual`, which the caller checks separately).
ParsedMessage expected_message(const GoldenCase& golden, const ParsedMessage& actual);

// Printable form of text for failure messages (escapes, at most `limit` bytes).
std::string printable(std::string_view text, size_t limit = 400);

}  // namespace fourbit::parser_test
