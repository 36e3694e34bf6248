// What the CLI tests share: running the real `fourbit` binary as a child process, temporary
// directories, file surgery for corrupt-input cases, and one tiny model per test process.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace fourbit::cli_test {

namespace fs = std::filesystem;

// How a child process ended, with everything it wrote. `signal` != 0 means it was killed by a
// signal (abort, segfault, ...): a crash, never an acceptable way to report bad input.
struct CommandResult {
    std::vector<std::string> argv;
    bool exited = false;
    int exit_code = -1;
    int signal = 0;
    bool timed_out = false;
    std::string out;  // stdout
    std::string err;  // stderr
    // "fourbit logits ... -> exit 1" with stderr, for failure messages.
    std::string describe() const;
};

// Runs argv[0] (a path, no shell) with stdout and stderr captured separately. A child still
// running after `timeout_s` is killed and reported as timed out.
CommandResult run_command(const std::vector<std::string>& argv, double timeout_s = 120);
// run_command with FOURBIT_BINARY as argv[0].
CommandResult run_fourbit(const std::vector<std::string>& args);

// Success: exited with status 0. Otherwise says how it ended (naming any signal as a crash).
::testing::AssertionResult succeeded(const CommandResult& result);
// Bad input handled well: exited (no signal) with 1 or a CLI11 usage code (100..127), stderr
// holds exactly one error line, not an internal assertion, and that line contains every one
// of `needles` (the offending file, tensor or field).
::testing::AssertionResult failed_cleanly(const CommandResult& result,
                                          const std::vector<std::string>& needles);

using test_support::TempDir;

std::string read_file(const fs::path& path);
void write_file(const fs::path& path, const std::string& bytes);
nlohmann::json read_json(const fs::path& path);
void write_json(const fs::path& path, const nlohmann::json& json);
// Copies the regular files of `from` (not recursive) into a new directory `to`.
void copy_model_dir(const fs::path& from, const fs::path& to);
// The shard files of a checkpoint directory, sorted.
std::vector<fs::path> shard_files(const fs::path& dir);
// The shard that model.safetensors.index.json places `tensor` in.
fs::path shard_of(const fs::path& dir, const std::string& tensor);

// safetensors header surgery: the 8-byte little-endian length and the JSON text after it.
uint64_t header_length(const std::string& file_bytes);
void set_header_length(std::string& file_bytes, uint64_t length);

// "5,17,3".
std::string join_ids(const std::vector<int64_t>& ids);
// The token ids of `generate --output json` (its last stdout line); fails the test and returns
// {} if the output is not that JSON.
nlohmann::json generate_json(const CommandResult& result);

// Tensors of a logits file: rows x vocab f32 values.
struct LogitsFile {
    int64_t rows = 0;
    int64_t vocab = 0;
    std::vector<float> values;
    float at(int64_t row, int64_t column) const { return values[row * vocab + column]; }
};
LogitsFile read_logits(const fs::path& path);

// Base fixture: one tiny model (seed 1, one shard) and the same model in 5 MB shards, each made
// by `fourbit make-model` on first use and shared by every test of the process, plus a
// temporary directory per test.
class CliTest : public ::testing::Test {
protected:
    static void SetUpTestSuite();
    void SetUp() override;

    static const fs::path& tiny_dir();
    static const fs::path& tiny_sharded_dir();
    static constexpr int64_t kTinyVocab = 4096;

    std::unique_ptr<TempDir> temp_;
};

}  // namespace fourbit::cli_test
