# tests of the tokenizer part (fourbit_test(...))
# The reference tokenizer.json files are committed xz-compressed; the build decompresses them
# into tokenizers/ of this build folder for the tests (and bench/run_tokenizer.sh).
find_program(XZ_EXECUTABLE xz REQUIRED)
set(FOURBIT_TOKENIZER_JSON_DIR ${CMAKE_CURRENT_BINARY_DIR}/tokenizers)
set(tokenizer_json_files)
foreach(vocabulary qwen3 llama3 deepseek_v3 gpt4o)
  set(compressed ${PROJECT_SOURCE_DIR}/tests/golden/tokenizers/${vocabulary}.tokenizer.json.xz)
  set(decompressed ${FOURBIT_TOKENIZER_JSON_DIR}/${vocabulary}.tokenizer.json)
  add_custom_command(OUTPUT ${decompressed}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${FOURBIT_TOKENIZER_JSON_DIR}
    COMMAND ${XZ_EXECUTABLE} -dc ${compressed} > ${decompressed}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${decompressed}.tmp ${decompressed}
    DEPENDS ${compressed}
    COMMENT "Decompressing ${vocabulary}.tokenizer.json"
    VERBATIM)
  list(APPEND tokenizer_json_files ${decompressed})
endforeach()
add_custom_target(tokenizer_json DEPENDS ${tokenizer_json_files})

fourbit_test(tokenizer_test
  SOURCES tokenizer_test.cpp tokenizer_load_test.cpp tokenizer_stream_test.cpp
          tokenizer_cli_test.cpp tokenizer_test_data.cpp
  LIBS fourbit_text)
target_compile_definitions(tokenizer_test PRIVATE
  FOURBIT_TOKENIZER_JSON_DIR="${FOURBIT_TOKENIZER_JSON_DIR}")
add_dependencies(tokenizer_test tokenizer_json fourbit)
