// Value conversion by schema type, one rule at a time (the golden cases test them in context).
#include "text/tool_arguments.h"

#include <gtest/gtest.h>

namespace fourbit {
namespace {

ValueTypes types_of(const char* schema) { return value_types_of(nlohmann::json::parse(schema)); }

TEST(ToolArguments, TypesFromSchema) {
    ValueTypes types = types_of(R"({"type": ["integer", "null"]})");
    EXPECT_TRUE(types.integer && types.null && !types.string);
    types = types_of(R"({"anyOf": [{"type": "number"}, {"oneOf": [{"enum": [true, "x"]}]}]})");
    EXPECT_TRUE(types.number && types.boolean && types.string && !types.integer);
    types = types_of(R"({"description": "no type"})");
    EXPECT_TRUE(types.string && !types.declared);
    types = types_of(R"({"type": "date"})");
    EXPECT_TRUE(types.declared && !types.string);
    types = types_of(R"({"type": "STR"})");
    EXPECT_TRUE(types.string);
}

TEST(ToolArguments, Integers) {
    const ValueTypes integer = types_of(R"({"type": "integer"})");
    EXPECT_EQ(convert_parameter_value("42", integer), "42");
    EXPECT_EQ(convert_parameter_value(" -007 ", integer), "-7");
    EXPECT_EQ(convert_parameter_value("+5", integer), "5");
    EXPECT_EQ(convert_parameter_value("-0", integer), "0");
    EXPECT_EQ(convert_parameter_value("123456789012345678901234567890", integer),
              "123456789012345678901234567890");
    EXPECT_EQ(convert_parameter_value("5.0", integer), "5");
    EXPECT_EQ(convert_parameter_value("1e3", integer), "1000");
    EXPECT_EQ(convert_parameter_value("5.5", integer), "5.5");        // JSON fallback
    EXPECT_EQ(convert_parameter_value("0x10", integer), "\"0x10\"");  // string fallback
}

TEST(ToolArguments, Numbers) {
    const ValueTypes number = types_of(R"({"type": "number"})");
    EXPECT_EQ(convert_parameter_value("3.25", number), "3.25");
    EXPECT_EQ(convert_parameter_value("-0.0", number), "0");
    EXPECT_EQ(convert_parameter_value(".5", number), "0.5");
    EXPECT_EQ(convert_parameter_value("5.", number), "5");
    EXPECT_EQ(convert_parameter_value("1e-5", number), "1e-05");
    EXPECT_EQ(convert_parameter_value("0.1", number), "0.1");
    EXPECT_EQ(convert_parameter_value("1e400", number), "\"1e400\"");
    EXPECT_EQ(convert_parameter_value("nan", number), "\"nan\"");
    EXPECT_EQ(convert_parameter_value("1e20", number), "100000000000000000000");
}

TEST(ToolArguments, BooleansNullsAndStrings) {
    const ValueTypes boolean = types_of(R"({"type": "boolean"})");
    EXPECT_EQ(convert_parameter_value(" ON ", boolean), "true");
    EXPECT_EQ(convert_parameter_value("No", boolean), "false");
    EXPECT_EQ(convert_parameter_value("none", boolean), "null");
    const ValueTypes string = types_of(R"({"type": "string"})");
    EXPECT_EQ(convert_parameter_value("None", string), "\"None\"");
    EXPECT_EQ(convert_parameter_value("  a\tb\n", string), "\"  a\\tb\\n\"");
    EXPECT_EQ(convert_parameter_value("\x01\"\\", string), "\"\\u0001\\\"\\\\\"");
    const ValueTypes nullable = types_of(R"({"type": ["string", "null"]})");
    EXPECT_EQ(convert_parameter_value("Nil", nullable), "null");
}

TEST(ToolArguments, ObjectsAndArrays) {
    const ValueTypes object = types_of(R"({"type": "object"})");
    EXPECT_EQ(convert_parameter_value(R"({"b":{"c":[]},"a":"é"})", object),
              "{\"b\": {\"c\": []}, \"a\": \"é\"}");
    EXPECT_EQ(convert_parameter_value("{}", object), "{}");
    EXPECT_EQ(convert_parameter_value("{bad", object), "\"{bad\"");
    const ValueTypes array = types_of(R"({"type": "array"})");
    EXPECT_EQ(convert_parameter_value("[1, [2, {\"x\": null}]]", array), "[1, [2, {\"x\": null}]]");
    // Nesting beyond the limit is not parsed (no deep recursion on hostile values).
    EXPECT_EQ(convert_parameter_value(std::string(1000, '[') + std::string(1000, ']'), array),
              "\"" + std::string(1000, '[') + std::string(1000, ']') + "\"");
}

TEST(ToolArguments, UntypedFallsBackToJsonThenString) {
    const ValueTypes unknown = types_of(R"({"type": "date"})");
    EXPECT_EQ(convert_parameter_value("[1,2]", unknown), "[1, 2]");
    EXPECT_EQ(convert_parameter_value("2024-01-01", unknown), "\"2024-01-01\"");
}

TEST(ToolArguments, FindsPropertiesOfTheNamedTool) {
    const nlohmann::json tools = nlohmann::json::parse(R"([
        {"type": "function", "function": {"name": "a", "parameters": {"properties": {"x": {"type": "integer"}}}}},
        {"name": "b", "parameters": {"properties": {"y": {}}}},
        {"type": "function", "function": {"name": "c"}}, 7])");
    ASSERT_NE(find_tool_properties(tools, "a"), nullptr);
    EXPECT_TRUE(parameter_types(find_tool_properties(tools, "a"), "x").integer);
    EXPECT_TRUE(parameter_types(find_tool_properties(tools, "a"), "z").string);
    ASSERT_NE(find_tool_properties(tools, "b"), nullptr);
    EXPECT_EQ(find_tool_properties(tools, "c"), nullptr);
    EXPECT_EQ(find_tool_properties(tools, "d"), nullptr);
    EXPECT_TRUE(parameter_types(nullptr, "x").string);
}

}  // namespace
}  // namespace fourbit
