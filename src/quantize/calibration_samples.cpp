// Drawing, rendering, tokenizing and length-filtering calibration samples.
#include "quantize/calibration_samples.h"

#include <filesystem>
#include <numeric>

#include "quantize/calibration_data.h"
#include "quantize/sha256.h"
#include "util/error.h"

namespace fourbit {

namespace {

uint64_t splitmix64(uint64_t& state) {
    uint64_t x = (state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

CalibrationSample make_sample(const CalibrationRecord& record, int64_t dataset,
                              const Recipe& recipe, const ChatTemplate& chat_template,
                              const Tokenizer* tokenizer, int64_t vocab_size) {
    CalibrationSample sample;
    sample.dataset = dataset;
    sample.where = record.where;
    sample.token_ids = tokenize_record(record, chat_template, tokenizer);
    for (int32_t id : sample.token_ids) {
        if (id < 0 || id >= vocab_size) {
            fail("{}: token id {} is outside the model's vocabulary [0, {})", record.where, id,
                 vocab_size);
        }
    }
    if (static_cast<int64_t>(sample.token_ids.size()) > recipe.max_seq) {
        sample.token_ids.resize(recipe.max_seq);
        sample.truncated = true;
    }
    return sample;
}

}  // namespace

std::optional<Tokenizer> load_model_tokenizer(const std::string& model_dir) {
    const std::string path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
    if (!std::filesystem::exists(path)) return std::nullopt;
    return Tokenizer::load(path);
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    uint64_t state = seed;
    for (int64_t i = n - 1; i > 0; --i) {
        const int64_t j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
        std::swap(order[i], order[j]);
    }
    return order;
}

std::vector<int32_t> tokenize_record(const CalibrationRecord& record,
                                     const ChatTemplate& chat_template, const Tokenizer* tokenizer) {
    if (record.layout == RecordLayout::input_ids) return record.token_ids;
    if (tokenizer == nullptr) {
        fail("{}: a {} record needs the model's tokenizer.json, which it lacks (input_ids "
             "records need none)",
             record.where, record_layout_name(record.layout));
    }
    switch (record.layout) {
        case RecordLayout::text:
            return tokenizer->encode(record.text);
        default:
            try {
                return tokenizer->encode(chat_template.render(record.chat, false));
            } catch (const Error& error) {
                fail("{}: {}", record.where, error.what());
            }
    }
}

CalibrationQueue build_calibration_queue(const Recipe& recipe, const ChatTemplate& chat_template,
                                         const Tokenizer* tokenizer, int64_t vocab_size) {
    CalibrationQueue queue;
    Sha256 identity;
    for (size_t d = 0; d < recipe.datasets.size(); ++d) {
        const RecipeDataset& dataset = recipe.datasets[d];
        const DatasetFile file = read_dataset_file(dataset.path, recipe.skip_bad_records);
        DatasetCounts counts;
        counts.name = dataset.name;
        counts.n_records = static_cast<int64_t>(file.records.size());
        counts.n_skipped = static_cast<int64_t>(file.skipped.size());
        counts.skipped = file.skipped;
        const int64_t wanted = dataset.n_samples.value_or(recipe.samples_per_dataset);
        // Each dataset draws from its own stream, so adding a dataset changes no other's draw.
        const std::vector<int64_t> order =
            seeded_permutation(counts.n_records, recipe.seed ^ (0x51ed27ull * (d + 1)));
        const int64_t n_queued = std::min(wanted, counts.n_records);
        const int64_t n_held_out = std::min(recipe.held_out_samples, counts.n_records - n_queued);
        for (int64_t i = 0; i < n_queued + n_held_out; ++i) {
            CalibrationSample sample = make_sample(file.records[order[i]], static_cast<int64_t>(d),
                                                   recipe, chat_template, tokenizer, vocab_size);
            if (i >= n_queued) {
                queue.held_out.push_back(std::move(sample));
                ++counts.n_held_out;
                continue;
            }
            ++counts.n_queued;
            if (static_cast<int64_t>(sample.token_ids.size()) < recipe.min_tokens) {
                ++counts.n_too_short;
                continue;
            }
            ++counts.n_kept;
            counts.n_truncated += sample.truncated ? 1 : 0;
            counts.n_tokens += static_cast<int64_t>(sample.token_ids.size());
            const uint64_t n_tokens = sample.token_ids.size();
            identity.update(dataset.name);
            identity.update(&n_tokens, sizeof(n_tokens));
            identity.update(sample.token_ids.data(), sample.token_ids.size() * sizeof(int32_t));
            queue.samples.push_back(std::move(sample));
        }
        queue.datasets.push_back(std::move(counts));
    }
    if (queue.samples.empty()) {
        fail("no calibration sample is left after the length filter (min_tokens {})",
             recipe.min_tokens);
    }
    queue.sha256 = identity.hex();
    return queue;
}

}  // namespace fourbit
