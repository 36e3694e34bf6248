// `fourbit bench`: llama-benchy-compatible serving benchmarks against any OpenAI-compatible
// endpoint (src/bench/), the agentic suite, comparisons of two saved runs, and SVG plots.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/agentic_suite.h"
#include "bench/api_client.h"
#include "bench/compare_runs.h"
#include "bench/grid_report.h"
#include "bench/grid_runner.h"
#include "bench/svg_plot.h"
#include "cli/commands.h"
#include "util/error.h"

namespace fourbit {

namespace {

struct BenchOptions {
    std::string base_url;
    std::string api_key;
    bench::GridOptions grid;
    bool no_warmup = false;
    std::string format = "md";
    std::string save_path;
    std::string plot_path;
    std::string suite;  // "agentic" or a suite file
    int64_t max_tokens = 0;
    std::vector<std::string> compare_paths;
    std::string from_path;
};

nlohmann::json read_json_file(const std::string& flag, const std::string& path) {
    const std::string text = read_input_file(flag, path);
    nlohmann::json out = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded()) fail("{} {}: not valid JSON", flag, path);
    return out;
}

void write_text(const std::string& flag, const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    if (!out || !(out << text) || !out.flush()) fail("{} {}: cannot write the file", flag, path);
}

// The result in --format: on stdout, or into --save.
void emit(const BenchOptions& options, const nlohmann::json& result, bool grid) {
    std::string text;
    if (options.format == "json") {
        text = result.dump(2) + "\n";
    } else if (options.format == "csv") {
        if (!grid) fail("--format csv: only grid results have a CSV form (use md or json)");
        text = bench::grid_csv(result);
    } else {
        text = grid ? bench::grid_markdown(result) : bench::agentic_markdown(result);
    }
    if (options.save_path.empty()) {
        std::cout << text << std::flush;
    } else {
        write_text("--save", options.save_path, text);
        // The table goes to the terminal as well, as llama-benchy prints it.
        if (options.format != "md") {
            std::cout << (grid ? bench::grid_markdown(result) : bench::agentic_markdown(result))
                      << std::flush;
        }
    }
    if (!options.plot_path.empty()) {
        if (!grid) fail("--plot: only grid results are plotted");
        write_text("--plot", options.plot_path, bench::grid_svg(result));
    }
}

// The model to name in requests: --model, else the first one the server lists.
std::string resolve_model(const bench::Endpoint& endpoint, const std::string& model) {
    if (!model.empty()) return model;
    bench::ApiClient client(endpoint);
    const nlohmann::json models = client.get_json("/models");
    if (!models.contains("data") || !models["data"].is_array() || models["data"].empty() ||
        !models["data"][0].contains("id") || !models["data"][0]["id"].is_string()) {
        fail("{}: lists no model; name one with --model", client.url("/models"));
    }
    return models["data"][0]["id"];
}

void run_bench(BenchOptions& options) {
    if (options.format != "md" && options.format != "json" && options.format != "csv") {
        fail("--format: {} is not one of md, json, csv", options.format);
    }
    if (!options.compare_paths.empty()) {
        const auto a = read_json_file("--compare", options.compare_paths[0]);
        const auto b = read_json_file("--compare", options.compare_paths[1]);
        const std::string table =
            bench::compare_markdown(a, options.compare_paths[0], b, options.compare_paths[1]);
        if (options.save_path.empty())
            std::cout << table << std::flush;
        else
            write_text("--save", options.save_path, table);
        return;
    }
    if (!options.from_path.empty()) {
        const nlohmann::json result = read_json_file("--from", options.from_path);
        const std::string kind = bench::result_kind(result);
        if (kind.empty())
            fail("--from {}: not a fourbit bench or llama-benchy result", options.from_path);
        emit(options, result, kind == "grid");
        return;
    }
    if (options.base_url.empty()) fail("--base-url is required (e.g. http://127.0.0.1:8000/v1)");
    const bench::Endpoint endpoint = bench::parse_endpoint(options.base_url, options.api_key);
    if (!options.suite.empty()) {
        nlohmann::json suite;
        if (options.suite == "agentic") {
            suite = nlohmann::json::parse(bench::embedded_agentic_suite());
        } else {
            suite = read_json_file("--suite", options.suite);
        }
        bench::validate_suite(suite, options.suite);
        bench::AgenticOptions agentic;
        agentic.model = resolve_model(endpoint, options.grid.model);
        if (options.max_tokens > 0) agentic.max_tokens = options.max_tokens;
        emit(options, bench::run_agentic_suite(endpoint, suite, agentic), false);
        return;
    }
    options.grid.warmup = !options.no_warmup;
    bench::validate(options.grid);
    options.grid.model = resolve_model(endpoint, options.grid.model);
    emit(options, bench::grid_json(bench::run_grid(endpoint, options.grid)), true);
}

}  // namespace

void add_bench_command(CLI::App& app) {
    auto options = std::make_shared<BenchOptions>();
    CLI::App* command = app.add_subcommand(
        "bench", "serving benchmark (llama-benchy's definitions), agentic suite, comparisons");
    command->add_option("--base-url", options->base_url,
                        "OpenAI-compatible endpoint with its /v1, e.g. http://127.0.0.1:8000/v1");
    command->add_option("--api-key", options->api_key, "sent as `Authorization: Bearer KEY`");
    command->add_option("--model", options->grid.model,
                        "model name to request (default: the first the server lists)");
    command->add_option("--pp", options->grid.prompt_sizes, "prompt sizes in tokens, e.g. 512,1024")
        ->delimiter(',')
        ->capture_default_str();
    command->add_option("--tg", options->grid.response_sizes, "tokens to generate, e.g. 128,256")
        ->delimiter(',')
        ->capture_default_str();
    command->add_option("--depth", options->grid.depths, "context depths in tokens, e.g. 0,4096")
        ->delimiter(',')
        ->capture_default_str();
    command
        ->add_option("--concurrency", options->grid.concurrencies, "concurrent requests, e.g. 1,4")
        ->delimiter(',')
        ->capture_default_str();
    command->add_option("--runs", options->grid.runs, "measured runs per test")
        ->capture_default_str();
    command
        ->add_option("--latency-mode", options->grid.latency_mode,
                     "api (GET /models), generation (1-token stream) or none")
        ->capture_default_str();
    command->add_flag("--no-cache", options->grid.no_cache,
                      "unique prompts and cache_prompt: false (defeats prefix caches)");
    command->add_flag("--prefix-caching,--enable-prefix-caching", options->grid.prefix_caching,
                      "at depth > 0: load the context first (ctx_pp/ctx_tg rows), then the prompt");
    command->add_flag("--no-warmup", options->no_warmup,
                      "skip the unrecorded run before each test");
    command
        ->add_option("--seed", options->grid.seed,
                     "prompt selection seed (0: a fresh one; the JSON records it)")
        ->capture_default_str();
    command->add_option("--format", options->format, "md, json or csv")->capture_default_str();
    command->add_option("--save", options->save_path, "write the result here in --format");
    command->add_option(
        "--plot", options->plot_path,
        "write an SVG plot of a grid result (t/s against prompt length, time series)");
    command->add_option("--suite", options->suite,
                        "run a prompt suite instead of the grid: agentic, or a suite JSON file");
    command->add_option("--max-tokens", options->max_tokens,
                        "cap on each suite task's max_tokens (0: the suite's own)");
    command
        ->add_option("--compare", options->compare_paths,
                     "print comparison tables of two saved JSON results: A.json B.json")
        ->expected(2);
    command->add_option(
        "--from", options->from_path,
        "re-render a saved JSON result, fourbit's or llama-benchy's (with --format, "
        "--save, --plot)");
    command->callback([options] { run_bench(*options); });
}

}  // namespace fourbit
