# tests of the chat part (fourbit_test(...))
