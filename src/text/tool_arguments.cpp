// Schema-typed conversion of tool-call parameter values (see tool_arguments.h).
#include "text/tool_arguments.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

#include "text/python_json.h"

namespace fourbit {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Request schemas and parsed values deeper than this are treated as untyped / not JSON, so
// a hostile value cannot exhaust the stack of the recursive walks below.
constexpr int kMaxDepth = 128;

bool is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim_ascii_space(std::string_view text) {
    while (!text.empty() && is_ascii_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_ascii_space(text.back())) text.remove_suffix(1);
    return text;
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

void add_type(ValueTypes& types, const std::string& name) {
    types.declared = true;
    if (name == "integer" || name == "int") types.integer = true;
    if (name == "number" || name == "float") types.number = true;
    if (name == "boolean" || name == "bool") types.boolean = true;
    if (name == "object") types.object = true;
    if (name == "array") types.array = true;
    if (name == "string" || name == "str" || name == "text") types.string = true;
    if (name == "null") types.null = true;
}

void collect_types(const json& schema, ValueTypes& types, int depth) {
    if (!schema.is_object() || depth > kMaxDepth) return;
    if (auto type = schema.find("type"); type != schema.end()) {
        if (type->is_string()) add_type(types, ascii_lower(type->get_ref<const std::string&>()));
        if (type->is_array()) {
            for (const json& item : *type) {
                if (item.is_string())
                    add_type(types, ascii_lower(item.get_ref<const std::string&>()));
            }
        }
    }
    if (auto values = schema.find("enum"); values != schema.end() && values->is_array()) {
        for (const json& value : *values) {
            if (value.is_null()) add_type(types, "null");
            if (value.is_boolean()) add_type(types, "boolean");
            if (value.is_number_integer()) add_type(types, "integer");
            if (value.is_number_float()) add_type(types, "number");
            if (value.is_string()) add_type(types, "string");
            if (value.is_array()) add_type(types, "array");
            if (value.is_object()) add_type(types, "object");
        }
    }
    for (const char* key : {"anyOf", "oneOf", "allOf"}) {
        if (auto choices = schema.find(key); choices != schema.end() && choices->is_array()) {
            for (const json& choice : *choices) collect_types(choice, types, depth + 1);
        }
    }
}

// [+-]?digits, normalized as Python's int() prints it: no '+', no leading zeros, no "-0".
std::optional<std::string> integer_literal(std::string_view text) {
    bool negative = false;
    if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text.empty()) return std::nullopt;
    for (char c : text) {
        if (!is_digit(c)) return std::nullopt;
    }
    while (text.size() > 1 && text.front() == '0') text.remove_prefix(1);
    if (text == "0") return std::string("0");
    std::string out(negative ? "-" : "");
    out.append(text);
    return out;
}

// A decimal number as Python's float() reads it, minus inf/nan/underscores:
// [+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?. Nothing outside the double range.
std::optional<double> decimal_literal(std::string_view text) {
    if (!text.empty() && text.front() == '+') text.remove_prefix(1);
    size_t i = 0;
    if (i < text.size() && text[i] == '-') ++i;
    size_t digits = 0;
    while (i < text.size() && is_digit(text[i])) ++i, ++digits;
    if (i < text.size() && text[i] == '.') {
        ++i;
        while (i < text.size() && is_digit(text[i])) ++i, ++digits;
    }
    if (digits == 0) return std::nullopt;
    if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
        ++i;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
        size_t exponent_digits = 0;
        while (i < text.size() && is_digit(text[i])) ++i, ++exponent_digits;
        if (exponent_digits == 0) return std::nullopt;
    }
    if (i != text.size()) return std::nullopt;
    double value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

// An integral double written as the exact integer it is (Python's int(float)).
std::string integral_text(double value) {
    if (value == 0) return "0";
    std::array<char, 400> buffer{};
    std::snprintf(buffer.data(), buffer.size(), "%.0f", value);
    return buffer.data();
}

// Integer: an integer literal, or a decimal with an integral value ("5.0", "1e3").
std::optional<std::string> as_integer(std::string_view text) {
    if (auto literal = integer_literal(text)) return literal;
    if (auto value = decimal_literal(text); value && std::floor(*value) == *value) {
        return integral_text(*value);
    }
    return std::nullopt;
}

// Number: integral values collapse to integers (vLLM: 5.0 -> 5), others print as Python's
// repr of the double does (shortest round trip).
std::optional<std::string> as_number(std::string_view text) {
    if (auto literal = integer_literal(text)) return literal;
    auto value = decimal_literal(text);
    if (!value) return std::nullopt;
    if (std::floor(*value) == *value) return integral_text(*value);
    return json(*value).dump();
}

// Deepest [ / { nesting of JSON-looking text, strings skipped.
int nesting_depth(std::string_view text) {
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return deepest;
}

std::optional<ordered_json> parse_json(std::string_view text) {
    if (text.empty() || nesting_depth(text) > kMaxDepth) return std::nullopt;
    return try_parse_json_like_python(text);
}

}  // namespace

ValueTypes value_types_of(const json& schema) {
    ValueTypes types;
    collect_types(schema, types, 0);
    if (!types.declared) types.string = true;
    return types;
}

const json* find_tool_properties(const json& tools, std::string_view name) {
    if (!tools.is_array()) return nullptr;
    for (const json& tool : tools) {
        if (!tool.is_object()) continue;
        const json* function = &tool;
        if (auto nested = tool.find("function"); nested != tool.end() && nested->is_object()) {
            function = &*nested;
        }
        auto tool_name = function->find("name");
        if (tool_name == function->end() || !tool_name->is_string() ||
            tool_name->get_ref<const std::string&>() != name) {
            continue;
        }
        // The first tool of that name decides, as in vLLM.
        auto parameters = function->find("parameters");
        if (parameters == function->end() || !parameters->is_object()) return nullptr;
        auto properties = parameters->find("properties");
        if (properties == parameters->end() || !properties->is_object()) return nullptr;
        return &*properties;
    }
    return nullptr;
}

ValueTypes parameter_types(const json* properties, std::string_view name) {
    if (properties != nullptr) {
        if (auto schema = properties->find(std::string(name)); schema != properties->end()) {
            return value_types_of(*schema);
        }
    }
    ValueTypes types;
    types.string = true;
    return types;
}

std::string convert_parameter_value(std::string_view raw, const ValueTypes& types) {
    const std::string_view text = trim_ascii_space(raw);
    const std::string lower = ascii_lower(text);
    if ((lower == "null" || lower == "none" || lower == "nil") && (types.null || !types.string)) {
        return "null";
    }
    if (types.integer) {
        if (auto value = as_integer(text)) return *value;
    }
    if (types.number) {
        if (auto value = as_number(text)) return *value;
    }
    if (types.boolean) {
        if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") return "true";
        if (lower == "false" || lower == "0" || lower == "no" || lower == "off") return "false";
    }
    if (types.object || types.array) {
        if (auto value = parse_json(text);
            value && ((value->is_object() && types.object) || (value->is_array() && types.array))) {
            return python_json_dumps(*value);
        }
    }
    if (types.string) return json_string_literal(raw);
    if (auto value = parse_json(text)) return python_json_dumps(*value);
    return json_string_literal(raw);
}

std::string json_string_literal(std::string_view text) {
    return json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace fourbit
