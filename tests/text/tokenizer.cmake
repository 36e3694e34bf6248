# tests of the tokenizer part (fourbit_test(...))
