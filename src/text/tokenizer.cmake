# sources of the tokenizer part: target_sources(fourbit_text PRIVATE ...)
