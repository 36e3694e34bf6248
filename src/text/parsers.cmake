# Reasoning and tool-call parsers of model output (message_parser.h).
target_sources(fourbit_text PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/message_parser.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tool_arguments.cpp)
