# The chat format: golden prompts from the template itself (tests/golden/chat/), request
# validation, identities, and `fourbit render` through the real binary.
fourbit_test(chat_test SOURCES chat_test.cpp LIBS fourbit_text)
add_dependencies(chat_test fourbit)
