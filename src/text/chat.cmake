# sources of the chat part: target_sources(fourbit_text PRIVATE ...)
