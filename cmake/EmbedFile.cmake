# fourbit_embed_file(TARGET SYMBOL FILE): compiles FILE's bytes into TARGET as
#   extern const char SYMBOL[]; extern const unsigned long SYMBOL_size;
# (namespace fourbit::assets), regenerated when FILE changes. For assets the binary must carry
# wherever it is installed: the tokenizer corpus, the chat template.
function(fourbit_embed_file target symbol file)
  set(output ${CMAKE_CURRENT_BINARY_DIR}/embedded_${symbol}.cpp)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DINPUT=${file} -DOUTPUT=${output} -DSYMBOL=${symbol}
            -P ${PROJECT_SOURCE_DIR}/cmake/EmbedFileGenerate.cmake
    DEPENDS ${file} ${PROJECT_SOURCE_DIR}/cmake/EmbedFileGenerate.cmake
    COMMENT "Embedding ${file}")
  target_sources(${target} PRIVATE ${output})
endfunction()
