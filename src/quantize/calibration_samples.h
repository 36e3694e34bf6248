// The calibration queue: records drawn from each dataset with the recipe's seed, rendered with
// the model's chat format, tokenized, truncated to max_seq and filtered by length (the recipe's
// "896 queued, 888 kept"), plus held-out samples for the export's KL smoke test.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quantize/calibration_data.h"
#include "quantize/recipe.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace fourbit {

struct CalibrationSample {
    int64_t dataset = 0;  // index into Recipe::datasets
    std::string where;    // the record's file and line
    std::vector<int32_t> token_ids;
    bool truncated = false;
};

struct DatasetCounts {
    std::string name;
    int64_t n_records = 0;    // usable records in the file
    int64_t n_skipped = 0;    // bad records skipped (skip_bad_records)
    int64_t n_queued = 0;     // drawn for calibration
    int64_t n_kept = 0;       // after the length filter
    int64_t n_too_short = 0;  // dropped: fewer than min_tokens
    int64_t n_truncated = 0;  // cut to max_seq
    int64_t n_tokens = 0;     // of the kept samples
    int64_t n_held_out = 0;
    std::vector<std::string> skipped;  // "FILE:LINE: why"
};

struct CalibrationQueue {
    std::vector<CalibrationSample> samples;   // calibration, dataset by dataset
    std::vector<CalibrationSample> held_out;  // for the KL smoke test
    std::vector<DatasetCounts> datasets;
    std::string sha256;  // of every sample's dataset and tokens: a resume must see the same queue
};

// Renders a record as the model sees it: chat through `chat_template` (no generation prompt),
// text as is, token ids unchanged. `tokenizer` may be null (a checkpoint without
// tokenizer.json): then only input_ids records are usable, others are an Error naming them.
std::vector<int32_t> tokenize_record(const CalibrationRecord& record,
                                     const ChatTemplate& chat_template, const Tokenizer* tokenizer);

// DIR/tokenizer.json when present.
std::optional<Tokenizer> load_model_tokenizer(const std::string& model_dir);

// Builds the queue. A token id outside [0, vocab_size) is an Error naming the record.
CalibrationQueue build_calibration_queue(const Recipe& recipe, const ChatTemplate& chat_template,
                                         const Tokenizer* tokenizer, int64_t vocab_size);

// A seeded permutation of [0, n): the same on every machine (no std::shuffle, whose algorithm
// the standard leaves open).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

}  // namespace fourbit
