# Reasoning and tool-call parsers: golden cases (tests/golden/parsers/cases.json) whole and
# streamed over every split, value conversion, and `fourbit parse` through the real binary.
fourbit_test(parser_test
  SOURCES parser_test.cpp parser_test_helpers.cpp tool_arguments_test.cpp parse_cli_test.cpp
  LIBS fourbit_text)
add_dependencies(parser_test fourbit)
