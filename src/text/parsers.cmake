# sources of the parsers part: target_sources(fourbit_text PRIVATE ...)
