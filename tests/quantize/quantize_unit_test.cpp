// Unit tests of the quantize layer without a model run: the quantizer counts of the M2.7 shape
// against the published release, dataset layouts and errors, the recipe and its environment
// variables, the seeded draw, checkpoint files, starved-expert policy and the eval metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/make_model.h"
#include "quantize/calibration_data.h"
#include "quantize/calibration_samples.h"
#include "quantize/calibration_state.h"
#include "quantize/eval_metrics.h"
#include "quantize/export_nvfp4.h"
#include "quantize/quantized_modules.h"
#include "quantize/recipe.h"
#include "quantize/sha256.h"
#include "quantize/starved_experts.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace fourbit {
namespace {

using test_support::TempDir;

void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

// recipe.md §1: 47,927 Linears x 3 + 62 x 3 = 143,967 inserted; 92,640 active = 60 layers x
// 772 Linears x 2; 51,327 disabled. The published numbers are the reference.
TEST(QuantizedModules, M27ShapeWithTheDefaultIgnoreListMatchesThePublishedCounts) {
    const MiniMaxM2Config config = preset_config("m2.7", std::nullopt);
    for (QuantizationFormat format :
         {QuantizationFormat::nvfp4_compressed_tensors, QuantizationFormat::nvfp4_modelopt}) {
        const QuantizationPlan plan =
            make_quantization_plan(config, default_ignore_list(config, format));
        EXPECT_EQ(plan.n_linears(), 47927);
        EXPECT_EQ(plan.n_quantized(), 46320);
        EXPECT_EQ(plan.quantizers_inserted(), 143967);
        EXPECT_EQ(plan.quantizers_active(), 92640);
        EXPECT_EQ(plan.quantizers_disabled(), 51327);
    }
}

TEST(QuantizedModules, KeepsTheHeadAndFusedGroupsWhole) {
    const MiniMaxM2Config config = preset_config("tiny", std::nullopt);
    EXPECT_THROW(make_quantization_plan(config, {"model.embed_tokens"}), Error);
    try {
        make_quantization_plan(config, {"lm_head", "model.layers.1.self_attn.k_proj"});
        FAIL() << "a split q/k/v group was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("qkv_proj"), std::string::npos) << error.what();
    }
    const QuantizationPlan plan = make_quantization_plan(config, {"lm_head"});
    EXPECT_EQ(plan.n_quantized(), plan.n_linears() - 1);  // routers too, when not ignored
}

TEST(CalibrationData, RecognisesEveryLayoutByItsFields) {
    TempDir dir;
    const std::string path = dir / "mix.jsonl";
    write_text(path,
               R"J({"text": "plain text"})J" "\n"
               R"J({"input_ids": [1, 2, 3]})J" "\n"
               R"J({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}, {"role": "tool", "content": "42"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})J" "\n"
               "\n"
               R"J({"instruction": "write code", "input": "in python", "output": "print(1)"})J" "\n"
               R"J({"query": "weather?", "tools": "[{\"name\": \"get_weather\", \"description\": \"d\", \"parameters\": {\"city\": {\"type\": \"str\"}}}]", "answers": "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]"})J" "\n"
               R"J({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})J" "\n"
               R"J({"messages": "[{\"role\": \"user\", \"content\": \"as text\"}]"})J" "\n");
    const DatasetFile file = read_dataset_file(path, false);
    ASSERT_EQ(file.records.size(), 7u);
    EXPECT_EQ(file.records[0].layout, RecordLayout::text);
    EXPECT_EQ(file.records[1].token_ids, (std::vector<int32_t>{1, 2, 3}));
    EXPECT_EQ(file.records[2].layout, RecordLayout::messages);
    EXPECT_EQ(file.records[2].chat.messages[1].tool_calls.at(0).name, "f");
    EXPECT_EQ(file.records[2].chat.tools.size(), 1u);
    EXPECT_EQ(file.records[3].layout, RecordLayout::instruction_output);
    EXPECT_EQ(file.records[3].chat.messages[0].content.text, "write code\n\nin python");
    EXPECT_EQ(file.records[3].where, path + ":5");  // the blank line still counts
    const CalibrationRecord& xlam = file.records[4];
    EXPECT_EQ(xlam.layout, RecordLayout::query_answers);
    ASSERT_EQ(xlam.chat.tools.size(), 1u);
    EXPECT_EQ(xlam.chat.tools[0]["function"]["parameters"]["type"], "object");
    EXPECT_EQ(xlam.chat.messages.at(1).tool_calls.at(0).arguments["city"], "Paris");
    EXPECT_EQ(file.records[5].chat.messages.at(1).role, ChatRole::assistant);
    EXPECT_EQ(file.records[6].chat.messages.at(0).content.text, "as text");
    // The chat format renders them (tool calls included).
    const ChatTemplate chat = ChatTemplate::builtin();
    EXPECT_NE(chat.render(xlam.chat, false).find("get_weather"), std::string::npos);
}

TEST(CalibrationData, BadRecordsNameFileAndLineOrAreSkippedAndCounted) {
    TempDir dir;
    const std::string path = dir / "bad.jsonl";
    write_text(path, R"J({"text": "ok"})J" "\n" R"J({"prompt": 1, "label": 2})J" "\n" "{not json\n");
    try {
        read_dataset_file(path, false);
        FAIL() << "a record of no known layout was accepted";
    } catch (const Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(path + ":2"), std::string::npos) << message;
        EXPECT_NE(message.find("prompt, label"), std::string::npos) << message;
    }
    const DatasetFile skipped = read_dataset_file(path, true);
    EXPECT_EQ(skipped.records.size(), 1u);
    ASSERT_EQ(skipped.skipped.size(), 2u);
    EXPECT_NE(skipped.skipped[1].find(path + ":3"), std::string::npos) << skipped.skipped[1];

    const std::string array = dir / "records.json";
    write_text(array, R"J([{"text": "a"}, {"messages": []}])J");
    try {
        read_dataset_file(array, false);
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("record 1"), std::string::npos) << error.what();
    }
}

TEST(Recipe, FileThenEnvironmentWithErrorsNamingTheKey) {
    TempDir dir;
    const std::string path = dir / "recipe.json";
    write_text(path, R"J({"datasets": ["code.jsonl", {"path": "/abs/chat.jsonl", "name": "chat",
                          "samples": 3}], "seed": 7, "max_seq": 100, "min_tokens": 4,
                          "format": "modelopt", "checkpoint_every": 2})J");
    Recipe recipe = read_recipe_file(path);
    ASSERT_EQ(recipe.datasets.size(), 2u);
    EXPECT_EQ(recipe.datasets[0].path, dir / "code.jsonl");
    EXPECT_EQ(recipe.datasets[0].name, "code");
    EXPECT_EQ(recipe.datasets[1].n_samples, 3);
    EXPECT_EQ(recipe.format, QuantizationFormat::nvfp4_modelopt);
    std::map<std::string, std::string> env = {{"NUM_CALIB_PER_DS", "5"}, {"MAX_SEQ", "64"},
                                              {"CKPT_EVERY", "9"}, {"PHASE", "B"},
                                              {"WALLCLOCK_BUDGET_S", "12.5"},
                                              {"STARVED_EXPERT_PCT_ABORT", "2"},
                                              {"BUCKET_REPO_ID", "x"}};
    auto lookup = [&env](const char* name) -> std::optional<std::string> {
        auto it = env.find(name);
        return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    apply_recipe_environment(recipe, lookup);
    EXPECT_EQ(recipe.samples_per_dataset, 5);
    EXPECT_FALSE(recipe.datasets[1].n_samples.has_value());
    EXPECT_EQ(recipe.max_seq, 64);
    EXPECT_EQ(recipe.checkpoint_every, 9);
    EXPECT_EQ(recipe.phase, "B");
    EXPECT_EQ(recipe.wallclock_budget_s, 12.5);
    EXPECT_EQ(recipe.starved_expert_pct_abort, 2.0);
    env["MAX_SEQ"] = "lots";
    try {
        apply_recipe_environment(recipe, lookup);
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("MAX_SEQ='lots'"), std::string::npos);
    }
    write_text(path, R"J({"max_seqq": 3})J");
    try {
        read_recipe_file(path);
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("max_seqq"), std::string::npos);
    }
}

TEST(CalibrationQueue, SeededDrawLengthFilterAndTruncation) {
    const std::vector<int64_t> a = seeded_permutation(50, 3), b = seeded_permutation(50, 3);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, seeded_permutation(50, 4));
    std::vector<int64_t> sorted = a;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[i], i);

    TempDir dir;
    const std::string path = dir / "ids.jsonl";
    std::string lines;
    for (int n = 1; n <= 10; ++n) {  // sample n has n tokens
        nlohmann::json ids = nlohmann::json::array();
        for (int i = 0; i < n; ++i) ids.push_back(i);
        lines += nlohmann::json{{"input_ids", ids}}.dump() + "\n";
    }
    write_text(path, lines);
    Recipe recipe;
    recipe.datasets = {{path, "ids", 8}};
    recipe.min_tokens = 4;
    recipe.max_seq = 6;
    recipe.held_out_samples = 1;
    const CalibrationQueue queue =
        build_calibration_queue(recipe, ChatTemplate::builtin(), nullptr, 100);
    const DatasetCounts& counts = queue.datasets.at(0);
    EXPECT_EQ(counts.n_queued, 8);
    EXPECT_EQ(counts.n_held_out, 1);
    EXPECT_EQ(counts.n_kept + counts.n_too_short, 8);
    int64_t short_ones = 0, truncated = 0;
    for (int64_t i = 0; i < 8; ++i) {
        const int64_t n = seeded_permutation(10, recipe.seed ^ 0x51ed27ull)[i] + 1;
        short_ones += n < 4 ? 1 : 0;
        truncated += n > 6 ? 1 : 0;
    }
    EXPECT_EQ(counts.n_too_short, short_ones);
    EXPECT_EQ(counts.n_truncated, truncated);
    for (const CalibrationSample& sample : queue.samples) EXPECT_LE(sample.token_ids.size(), 6u);
}

std::vector<LinearModule> tiny_modules() {
    return minimax_m2_linear_modules(preset_config("tiny", std::nullopt));
}

TEST(CalibrationState, JsonRoundTripIsExactAndCheckpointsSurviveATornWrite) {
    const std::vector<LinearModule> modules = tiny_modules();
    CalibrationState state = CalibrationState::empty("abc", 5, modules.size(), 4, 16, 2);
    state.done[1] = state.done[3] = 1;
    state.deferred[4] = 1;
    state.input_amax[0] = 0.1f;
    state.input_amax[7] = 3.4028235e38f;
    state.input_amax[9] = 1.17549435e-38f;
    state.expert_tokens[17] = 12;
    state.dataset_tokens = {5, 6};
    const std::string text = calibration_state_json(state, modules);
    const CalibrationState back = parse_calibration_state(text, modules, "test");
    EXPECT_EQ(calibration_state_json(back, modules), text);
    EXPECT_EQ(back.input_amax, state.input_amax);  // bit-exact floats
    EXPECT_EQ(back.done, state.done);
    EXPECT_EQ(back.deferred, state.deferred);

    TempDir dir;
    CheckpointStore store(dir / "calibration");
    store.write(state, modules);
    state.done[0] = 1;
    store.write(state, modules);
    state.done[2] = 1;
    const std::string newest = store.write(state, modules);
    int64_t n_states = 0;
    for (auto& entry : std::filesystem::directory_iterator(store.dir())) {
        n_states += entry.path().extension() == ".json" ? 1 : 0;
    }
    EXPECT_EQ(n_states, 2);  // the two newest are kept
    std::string chosen;
    EXPECT_EQ(store.load_latest(modules, &chosen)->n_done(), 4);
    EXPECT_EQ(chosen, newest);
    // A torn newest file (its marker no longer matches) falls back to the one before.
    write_text(newest, text.substr(0, 20));
    EXPECT_EQ(store.load_latest(modules, &chosen)->n_done(), 3);
    EXPECT_NE(chosen, newest);
    EXPECT_EQ(sha256_hex("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(StarvedExperts, DetectRescueByPolicyAndAbortOverThePercentage) {
    const MiniMaxM2Config config = preset_config("tiny", std::nullopt);  // 4 layers, 16 experts
    const QuantizationPlan plan =
        make_quantization_plan(config, default_ignore_list(config, QuantizationFormat::nvfp4_modelopt));
    CalibrationState state = CalibrationState::empty("q", 1, plan.n_linears(), 4, 16, 1);
    const int64_t per_layer = 5 + 3 * 16;
    for (int64_t l = 0; l < 4; ++l) {
        state.input_amax[l * per_layer + 4] = 10.0f + l;  // router input
        for (int64_t e = 0; e < 16; ++e) {
            state.expert_tokens[l * 16 + e] = 100;
            const int64_t w1 = l * per_layer + 5 + 3 * e;
            state.input_amax[w1] = state.input_amax[w1 + 2] = 1.0f + e * 0.1f;
            state.input_amax[w1 + 1] = 2.0f + e;
        }
    }
    state.expert_tokens[1 * 16 + 3] = 0;  // layer 1 expert 3: none
    state.expert_tokens[2 * 16 + 15] = 4;  // layer 2 expert 15: too few
    state.expert_tokens[0 * 16 + 5] = 0;   // layer 0 is ignored: not checked
    const StarvedExperts starved = find_starved_experts(plan, state, 5);
    ASSERT_EQ(starved.starved.size(), 2u);
    EXPECT_EQ(starved.n_experts_checked, 2 * 16);
    EXPECT_EQ(starved.starved[0].layer, 1);
    EXPECT_EQ(starved.starved[0].expert, 3);
    const std::vector<float> amax = rescue_starved_experts(plan, state, starved, 10.0);
    const int64_t w1 = 1 * per_layer + 5 + 3 * 3;
    EXPECT_EQ(amax[w1], 11.0f);       // layer 1's router input amax
    EXPECT_EQ(amax[w1 + 2], 11.0f);
    EXPECT_EQ(amax[w1 + 1], 2.0f + 15);  // the largest sibling w2 amax
    const int64_t w1_l2 = 2 * per_layer + 5 + 3 * 15;
    EXPECT_EQ(amax[w1_l2 + 1], 2.0f + 14);  // its own (largest) is not a sibling
    EXPECT_EQ(amax[w1 + 3], state.input_amax[w1 + 3]);  // others untouched
    try {
        rescue_starved_experts(plan, state, starved, 5.0);  // 6.25% > 5%
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("layer 1 expert 3"), std::string::npos);
    }
}

TEST(EvalMetrics, KlPerplexityAndTopOneAgainstHandComputedValues) {
    // Two positions, vocabulary 2; tokens [0, 1, 0].
    Tensor q = Tensor::zeros(DType::f32, {3, 2});
    Tensor p = Tensor::zeros(DType::f32, {3, 2});
    const float q_values[] = {0, 0, 1, 0, 5, 5};           // uniform; e/(1+e) on token 0
    const float p_values[] = {0, std::log(3.0f), 0, 0, 0, 0};  // 1/4, 3/4; uniform
    std::copy_n(q_values, 6, q.data<float>());
    std::copy_n(p_values, 6, p.data<float>());
    const std::vector<int32_t> tokens = {0, 1, 0};
    NextTokenMetrics m;
    add_next_token_metrics(q, &p, tokens, m);
    EXPECT_EQ(m.n_predictions, 2);
    const double sigma = std::exp(1.0) / (1 + std::exp(1.0));
    EXPECT_NEAR(m.nll_sum, -std::log(0.5) - std::log(sigma), 1e-6);
    const double kl0 = 0.25 * std::log(0.25 / 0.5) + 0.75 * std::log(0.75 / 0.5);
    const double kl1 = 0.5 * std::log(0.5 / sigma) + 0.5 * std::log(0.5 / (1 - sigma));
    EXPECT_NEAR(m.mean_kl(), (kl0 + kl1) / 2, 1e-6);
    // Row 0: q ties (argmax 0), p picks 1: disagree. Row 1: q picks 0, p ties -> 0: agree.
    EXPECT_EQ(m.n_top1_agree, 1);
    NextTokenMetrics self;
    add_next_token_metrics(q, &q, tokens, self);
    EXPECT_NEAR(self.mean_kl(), 0.0, 1e-12);
    EXPECT_EQ(self.top1_agreement(), 1.0);
    EXPECT_NEAR(self.perplexity(), m.perplexity(), 1e-12);
}

// The refusals of a broken export (recipe.md §3: a published checkpoint shipped NaN input
// scales): nothing is written under the final names when any quantized module lacks a finite,
// positive calibrated amax.
TEST(ExportNvFp4, RefusesModulesWithoutAFiniteCalibratedAmax) {
    TempDir dir;
    MakeModelOptions make;
    make.preset = "tiny";
    make.out_dir = dir / "model";
    make_model(make);
    const MiniMaxM2Config config = preset_config("tiny", std::nullopt);
    const QuantizationPlan plan = make_quantization_plan(
        config, default_ignore_list(config, QuantizationFormat::nvfp4_compressed_tensors));
    ExportRequest request;
    request.source_dir = dir / "model";
    request.out_dir = dir / "out";
    request.plan = &plan;
    request.input_amax.assign(plan.n_linears(), 1.0f);
    const size_t missing = 5 + 4 * 53 / 4;  // some module of layer 1
    ASSERT_TRUE(plan.quantized.at(missing));
    for (float bad : {0.0f, std::nanf(""), INFINITY, -1.0f}) {
        request.input_amax[missing] = bad;
        try {
            export_nvfp4(request);
            FAIL() << "exported with an amax of " << bad;
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find(plan.modules[missing].prefix.substr(0, 20)), std::string::npos)
                << message;
            EXPECT_NE(message.find("refusing"), std::string::npos) << message;
        }
        EXPECT_FALSE(std::filesystem::exists(dir.path() / "out" / "model.safetensors.index.json"));
    }
}

}  // namespace
}  // namespace fourbit
