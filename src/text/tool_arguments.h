// Tool-call argument values: a raw `<parameter>` value becomes JSON text, typed by the tool's
// JSON schema the way vLLM's minimax_m2 parser does (minimax_m2.md §6.2), with the deliberate
// differences listed in message_parser.h. Arguments are written with Python json.dumps spacing
// (", " and ": ", non-ASCII kept), so they read exactly like vLLM's.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fourbit {

// The types a parameter's schema admits: `type` (a string or a list), the types of `enum`
// values, and those of anyOf/oneOf/allOf branches. Aliases as in vLLM: int, float, bool,
// str, text.
struct ValueTypes {
    bool integer = false, number = false, boolean = false, object = false, array = false,
         string = false, null = false;
    // Some type was declared, known or not. When none is, the value is a string.
    bool declared = false;
};

ValueTypes value_types_of(const nlohmann::json& schema);

// The `parameters.properties` object of the tool named `name` in a `tools` array (OpenAI
// nesting or a bare {name, parameters}); nullptr for an unknown tool or one without it.
const nlohmann::json* find_tool_properties(const nlohmann::json& tools, std::string_view name);

// The types of parameter `name` under `properties` (which may be nullptr): a string when the
// parameter is not in the schema.
ValueTypes parameter_types(const nlohmann::json* properties, std::string_view name);

// JSON text for a raw value. Tried in vLLM's order: null words, integer, number, boolean,
// object/array, string; when no declared type fits, the value parsed as JSON, else a string.
std::string convert_parameter_value(std::string_view raw, const ValueTypes& types);

// A JSON string literal for `text`; bytes that are not UTF-8 become U+FFFD.
std::string json_string_literal(std::string_view text);

}  // namespace fourbit
