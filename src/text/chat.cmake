# The chat part: OpenAI request parsing (chat_request), the built-in MiniMax-M2 renderer
# (chat_template), where a checkpoint's template comes from (chat_template_source) and JSON as
# Python writes it (python_json).
target_sources(fourbit_text PRIVATE chat_request.cpp chat_template.cpp chat_template_source.cpp
  python_json.cpp)
# The shipped template is compiled in: its default identity is the fallback for checkpoints
# without a template, and checkpoint templates are compared with it.
fourbit_embed_file(fourbit_text minimax_m2_chat_template
  ${PROJECT_SOURCE_DIR}/models/templates/minimax_m2_chat_template.jinja)
