// Each subcommand registers itself on the app: its options struct, its flags, its action.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace fourbit {

void add_make_model_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_tokenize_commands(CLI::App& app);  // tokenize, detokenize
void add_render_command(CLI::App& app);
void add_parse_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_bench_model_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_eval_command(CLI::App& app);

// "5,17,3" -> {5, 17, 3}; Error naming the flag and the bad item otherwise.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& flag);

// The whole of the file `path` that option `flag` names ("-": standard input); an Error naming
// the flag, the file and why when it cannot be read.
std::string read_input_file(const std::string& flag, const std::string& path);

}  // namespace fourbit
