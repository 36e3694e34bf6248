# tests of the parsers part (fourbit_test(...))
