// JSON as Python's `json` module reads and writes it: chat templates print tool schemas and
// tool-call arguments with `json.dumps(value, ensure_ascii=False)`, so the prompt's bytes
// depend on Python's number formatting, escapes and key order, which this file reproduces.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace fourbit {

// NOTE: Python keeps integers of any size exactly; nlohmann stores only 64-bit ones. An integer
// literal beyond 64 bits is kept as a binary value with this subtype holding its decimal digits
// (and sign), which append_python_json prints back unchanged. Only parse_json_like_python makes
// such values; nlohmann's own dump() would print them as a byte list.
inline constexpr uint64_t kBigIntegerSubtype = 0x4249;  // "BI"

// Parses `text` as Python's json.loads does, into an ordered_json (key order kept; a repeated
// key keeps its first position and takes its last value; integers beyond 64 bits kept exactly).
// Throws Error "<what>: <reason>" on invalid JSON, with line and column. Two refusals where
// Python accepts: the NaN/Infinity literals (not JSON) and float literals beyond the range of
// a double such as 1e400 (Python makes them infinity).
nlohmann::ordered_json parse_json_like_python(std::string_view text, std::string_view what);
// The same without throwing: nullopt for invalid JSON (for text from a model, where invalid
// JSON is an ordinary outcome).
std::optional<nlohmann::ordered_json> try_parse_json_like_python(std::string_view text);

// json.dumps(value, ensure_ascii=False) with the default separators ", " and ": ".
std::string python_json_dumps(const nlohmann::ordered_json& value);
void append_python_json(std::string& out, const nlohmann::ordered_json& value);

// repr() of a Python float: the shortest digits that read back as `value`, printed in fixed
// notation for exponents -4..15 (with ".0" when integral) and as "1e-07" / "1.5e+16" otherwise;
// "NaN", "Infinity" and "-Infinity" as json.dumps writes them.
std::string python_float_repr(double value);

}  // namespace fourbit
