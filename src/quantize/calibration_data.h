// Calibration data sets from local files: JSONL (one record a line) or JSON (an array of
// records), each record recognised by its fields as one of the layouts the recipe's datasets
// use, and turned into what the tokenizer needs (a chat conversation, plain text, or token ids).
//
//   fields                              layout (example dataset)
//   input_ids: [int, ...]               pre-tokenized
//   messages: [...] (+ tools)           chat (Mixture-of-Thoughts, SWE-smith, ultrachat); a
//                                       JSON string holding the list is accepted too
//   conversations: [{from, value}]      ShareGPT (human/gpt/system/tool)
//   query + answers (+ tools)           xlam function calling: the user query and the
//                                       assistant's tool calls; tools/answers may be JSON text
//   instruction + output (+ input)      Alpaca style (evol-codealpaca)
//   text                                plain text
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "text/chat_request.h"

namespace fourbit {

enum class RecordLayout { input_ids, messages, conversations, query_answers, instruction_output, text };
const char* record_layout_name(RecordLayout layout);

struct CalibrationRecord {
    std::string where;  // "FILE:LINE" (JSONL) or "FILE: record N" (JSON), for messages
    RecordLayout layout = RecordLayout::text;
    ChatRequest chat;                // messages, conversations, query_answers, instruction_output
    std::string text;                // text
    std::vector<int32_t> token_ids;  // input_ids
};

struct DatasetFile {
    std::string path;
    std::vector<CalibrationRecord> records;
    // Records that could not be used, when skipping was asked for: "FILE:LINE: why".
    std::vector<std::string> skipped;
};

// Reads every record of `path` (.jsonl / .json; anything else is read as JSONL when its first
// non-blank character is '{', as JSON otherwise). A record that is not JSON, has none of the
// recognised layouts, or whose fields are malformed is an Error naming the file and line, or
// with `skip_bad_records` is left out and listed in `skipped`.
DatasetFile read_dataset_file(const std::string& path, bool skip_bad_records);

// One record from its JSON (exposed for tests); `where` prefixes errors.
CalibrationRecord parse_calibration_record(const nlohmann::ordered_json& record,
                                           const std::string& where);

}  // namespace fourbit
