# Script mode helper of EmbedFile.cmake: writes OUTPUT, a C++ file holding INPUT's bytes.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
file(WRITE ${OUTPUT}
  "// Generated from ${INPUT} by cmake/EmbedFile.cmake; do not edit.\n"
  "namespace fourbit::assets {\n"
  "extern const char ${SYMBOL}[] = {${bytes} '\\0'};\n"
  "extern const unsigned long ${SYMBOL}_size = ${size};\n"
  "}\n")
