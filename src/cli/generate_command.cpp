// `fourbit generate`: one request through the serving engine (the same scheduler, KV cache and
// speculative decoding as `serve`), printed as token ids.
#include <chrono>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/speculative_flags.h"
#include "runtime/engine.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit {

void add_generate_command(CLI::App& app) {
    struct Options {
        std::string model_dir;
        std::string prompt_ids;
        int64_t max_tokens = 16;
        std::optional<double> temperature, top_p, min_p;
        std::optional<int64_t> top_k;
        std::optional<uint64_t> seed;
        bool ignore_eos = false;
        std::string output = "text";
        SpeculativeFlags speculative;
        DeviceFlags device;
    };
    auto options = std::make_shared<Options>();
    CLI::App* command = app.add_subcommand("generate", "generate tokens from a prompt");
    command->add_option("--model", options->model_dir, "checkpoint directory")->required();
    command->add_option("--prompt-ids", options->prompt_ids, "prompt token ids, e.g. 5,17,3")
        ->required();
    command->add_option("--max-tokens", options->max_tokens, "tokens to generate")
        ->capture_default_str();
    command->add_option("--temperature", options->temperature, "0 = greedy");
    command->add_option("--top-k", options->top_k, "keep the k most likely tokens");
    command->add_option("--top-p", options->top_p, "keep the smallest set with this mass");
    command->add_option("--min-p", options->min_p, "drop tokens below min_p * p(max)");
    command->add_option("--seed", options->seed, "random seed for sampling")
        ->check(CLI::NonNegativeNumber);
    command->add_flag("--ignore-eos", options->ignore_eos, "generate exactly --max-tokens");
    command->add_option("--output", options->output, "text or json")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
    add_speculative_flags(*command, options->speculative);
    add_device_flags(*command, options->device);
    command->callback([options] {
        const Options& o = *options;
        std::vector<int32_t> prompt = parse_token_ids(o.prompt_ids, "--prompt-ids");
        const SpeculativeConfig speculative = resolve_speculative_flags(o.speculative);
        const int64_t context = static_cast<int64_t>(prompt.size()) + o.max_tokens;
        LoadOptions load;
        load.device = resolve_device(o.device, o.model_dir,
                                     std::min(context, EngineOptions{}.max_num_batched_tokens),
                                     1 + speculative.num_speculative_tokens);
        MiniMaxM2 model(load_model_weights(o.model_dir, load));
        GenerationDefaults defaults = load_generation_defaults(o.model_dir);
        // Explicit flags over generation_config.json over the built-in defaults.
        SamplingParams params = sampling_defaults(defaults);
        if (o.temperature) params.temperature = *o.temperature;
        if (o.top_k) params.top_k = *o.top_k;
        if (o.top_p) params.top_p = *o.top_p;
        if (o.min_p) params.min_p = *o.min_p;
        params.seed = o.seed;
        if (o.max_tokens < 1) fail("--max-tokens must be at least 1, got {}", o.max_tokens);

        GenerationRequest request;
        request.prompt_ids = prompt;
        request.sampling = params;
        request.max_tokens = o.max_tokens;
        request.ignore_eos = o.ignore_eos;
        request.stop_token_ids =
            defaults.eos_token_ids.empty() ? model.config().eos_token_ids : defaults.eos_token_ids;
        EngineOptions engine_options;
        engine_options.max_num_seqs = 1;
        engine_options.max_model_len = context;
        engine_options.gpu_memory_utilization = o.device.gpu_memory_utilization;
        engine_options.kv_cache_dtype = flags_kv_cache_dtype(o.device, load.device);
        engine_options.speculative = speculative;
        Engine engine(model, engine_options);

        struct Result {
            std::vector<int32_t> token_ids;
            std::chrono::steady_clock::time_point last_token;
        } result;
        std::promise<FinishEvent> finished;
        const auto start = std::chrono::steady_clock::now();
        engine.submit(
            request,
            [&](const TokenEvent& event) {
                result.token_ids.push_back(event.token_id);
                result.last_token = std::chrono::steady_clock::now();
            },
            [&](const FinishEvent& event) { finished.set_value(event); });
        const FinishEvent finish = finished.get_future().get();
        if (finish.reason == "error") fail("generation failed: {}", finish.error);

        const size_t n = result.token_ids.size();
        const double prefill_s = finish.time_to_first_token_s;
        const double decode_s =
            n > 1 ? std::chrono::duration<double>(result.last_token - start).count() - prefill_s
                  : 0.0;
        const EngineStats stats = engine.take_stats();
        spdlog::info(
            "prompt {} tokens in {:.3f}s ({:.1f} tok/s); {} tokens decoded in {:.3f}s "
            "({:.1f} tok/s); finish: {}{}",
            prompt.size(), prefill_s, prompt.size() / std::max(prefill_s, 1e-9),
            n > 0 ? n - 1 : 0, decode_s, n > 1 ? (n - 1) / std::max(decode_s, 1e-9) : 0.0,
            finish.reason,
            stats.spec_draft_tokens > 0
                ? fmt::format("; {} of {} draft tokens accepted", stats.spec_accepted_tokens,
                              stats.spec_draft_tokens)
                : "");
        if (o.output == "json") {
            nlohmann::json out = {{"token_ids", result.token_ids},
                                  {"finish_reason", finish.reason}};
            std::printf("%s\n", out.dump().c_str());
        } else {
            for (size_t i = 0; i < n; ++i) std::printf(i ? " %d" : "%d", result.token_ids[i]);
            std::printf("\n");
        }
    });
}

}  // namespace fourbit
