// `fourbit quantize` and `fourbit eval` end to end on the tiny preset: the export follows the
// formulas (bit-exact against quantize_nvfp4 on the source weights, input scales 2688 / amax),
// loads cleanly, and every protection holds: kill -9 then --resume, deferral, wall-clock stops,
// starved experts, bad records, --export-only, the recipe's environment variables.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <thread>

#include "formats/checkpoint.h"
#include "formats/nvfp4_tensors.h"
#include "integration/cli_helpers.h"
#include "model/make_model.h"
#include "nvfp4/quantize.h"
#include "quantize/sha256.h"
#include "tensor/numeric.h"

namespace fourbit::cli_test {
namespace {

// Deterministic text of `n_words` words, different per (dataset, index).
std::string words(int dataset, int index, int n_words) {
    static const char* kWords[] = {"the", "model", "returns", "a", "list", "of", "values", "when",
                                   "called", "with", "two", "numbers", "and", "prints", "them",
                                   "weather", "in", "Paris", "function", "code"};
    std::string text;
    for (int i = 0; i < n_words; ++i) {
        text += (i ? " " : "") + std::string(kWords[(dataset * 7 + index * 3 + i * i) % 20]);
    }
    return text;
}

class QuantizeCliTest : public CliTest {
protected:
    void SetUp() override {
        CliTest::SetUp();
        data_ = temp_->path() / "data";
        fs::create_directories(data_);
        std::string code, tools, chat;
        for (int i = 0; i < 6; ++i) {
            const int n = 4 + 7 * i;  // from short to about a hundred tokens
            code += nlohmann::json{{"instruction", words(0, i, n)}, {"output", words(1, i, n)}}
                        .dump() + "\n";
            const std::string tool_list = nlohmann::json::array(
                {{{"name", "get_weather"}, {"description", words(2, i, 6)},
                  {"parameters", {{"city", {{"type", "str"}, {"description", "city"}}}}}}}).dump();
            const std::string answers =
                nlohmann::json::array({{{"name", "get_weather"}, {"arguments", {{"city", words(3, i, 2)}}}}})
                    .dump();
            tools += nlohmann::json{{"query", words(4, i, n)}, {"tools", tool_list},
                                    {"answers", answers}}.dump() + "\n";
            chat += nlohmann::json{{"messages", {{{"role", "user"}, {"content", words(5, i, n)}},
                                                 {{"role", "assistant"}, {"content", words(6, i, n)}}}}}
                        .dump() + "\n";
        }
        write_file(data_ / "code.jsonl", code);
        write_file(data_ / "tools.jsonl", tools);
        write_file(data_ / "chat.jsonl", chat);
    }

    std::vector<std::string> quantize_args(const fs::path& out) const {
        return {"quantize", "--model", tiny_dir().string(), "--out", out.string(),
                "--dataset", (data_ / "code.jsonl").string(), "--dataset",
                (data_ / "tools.jsonl").string(), "--dataset", (data_ / "chat.jsonl").string(),
                "--samples-per-dataset", "3", "--checkpoint-every", "2", "--held-out-samples",
                "1"};
    }
    CommandResult quantize(const fs::path& out, std::vector<std::string> extra = {}) const {
        std::vector<std::string> args = quantize_args(out);
        args.insert(args.end(), extra.begin(), extra.end());
        return run_fourbit(args);
    }
    // The reference: one uninterrupted run, made once per test that needs it.
    const fs::path& reference() {
        if (reference_.empty()) {
            reference_ = temp_->path() / "reference";
            EXPECT_TRUE(succeeded(quantize(reference_)));
        }
        return reference_;
    }

    fs::path data_;
    fs::path reference_;
};

// sha256 of every file of the exported checkpoint (the calibration report, which holds
// timings, is not part of it).
std::map<std::string, std::string> output_digest(const fs::path& dir) {
    std::map<std::string, std::string> digest;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file()) {
            digest[entry.path().filename().string()] = sha256_file(entry.path().string());
        }
    }
    return digest;
}

void expect_same_output(const fs::path& a, const fs::path& b) {
    const auto da = output_digest(a), db = output_digest(b);
    EXPECT_GE(da.size(), 5u);
    EXPECT_EQ(da, db) << a << " vs " << b;
}

TEST_F(QuantizeCliTest, ExportFollowsTheFormulasAndLoadsClean) {
    const fs::path out = reference();
    CommandResult inspected = run_fourbit({"inspect", out.string()});
    EXPECT_TRUE(succeeded(inspected)) << inspected.out;
    const nlohmann::json report = read_json(out / "calibration" / "report.json");
    EXPECT_EQ(report["status"], "complete");
    EXPECT_EQ(report["quantizers"]["quantized_linears"], 2 * (4 + 3 * 16));  // layers 1 and 2
    EXPECT_TRUE(report["kl_smoke_test"]["all"]["mean_kl"].is_number());
    for (const nlohmann::json& d : report["datasets"]) EXPECT_GT(d["tokens_calibrated"], 0);

    const Checkpoint source = Checkpoint::open(tiny_dir().string());
    const Checkpoint exported = Checkpoint::open(out.string());
    auto f32_weight = [&](const std::string& prefix) {
        const Tensor w = source.tensor(prefix + ".weight");
        std::vector<float> values(w.numel());
        for (int64_t i = 0; i < w.numel(); ++i) values[i] = bf16_to_f32(w.data<uint16_t>()[i]);
        return values;
    };
    auto scalar = [&](const std::string& name) { return *exported.tensor(name).data<float>(); };
    // An expert's w1/w3 share the global scale of their group's amax, q/k/v theirs.
    for (const std::vector<std::string>& group :
         {std::vector<std::string>{"model.layers.1.block_sparse_moe.experts.3.w1",
                                   "model.layers.1.block_sparse_moe.experts.3.w3"},
          {"model.layers.2.self_attn.q_proj", "model.layers.2.self_attn.k_proj",
           "model.layers.2.self_attn.v_proj"},
          {"model.layers.2.block_sparse_moe.experts.0.w2"}}) {
        float weight_amax = 0;
        for (const std::string& m : group) {
            for (float v : f32_weight(m)) weight_amax = std::max(weight_amax, std::fabs(v));
        }
        const float global_scale = nvfp4_export_global_scale(weight_amax);
        float input_amax = 0;
        for (const std::string& m : group) {
            input_amax = std::max(input_amax, report["amax"][m]["input_amax"].get<float>());
            EXPECT_EQ(report["amax"][m]["input_amax"], report["amax"][m]["input_amax_observed"]);
        }
        for (const std::string& m : group) {
            const Tensor w = source.tensor(m + ".weight");
            const NvFp4Matrix expected =
                quantize_nvfp4(f32_weight(m), w.dim(0), w.dim(1), global_scale, m);
            const Tensor packed = exported.tensor(m + ".weight_packed");
            const Tensor scales = exported.tensor(m + ".weight_scale");
            ASSERT_EQ(packed.size_bytes(), expected.packed.size());
            EXPECT_EQ(0, std::memcmp(packed.raw(), expected.packed.data(), packed.size_bytes())) << m;
            EXPECT_EQ(0, std::memcmp(scales.raw(), expected.block_scales.data(), scales.size_bytes()))
                << m;
            EXPECT_EQ(scalar(m + ".weight_global_scale"), 1.0f / global_scale) << m;
            // compressed-tensors' input global scale is 2688 / amax (to the few ulps the
            // reciprocal-stable nudge moves it, so that ModelOpt's amax / 2688 is exact too).
            const double expected_input = 2688.0 / input_amax;
            EXPECT_NEAR(scalar(m + ".input_global_scale") / expected_input, 1.0, 4e-7) << m;
        }
    }
    // Ignored modules stay BF16, byte for byte.
    for (const std::string& name : {"model.layers.0.self_attn.q_proj.weight",
                                    "model.layers.3.block_sparse_moe.experts.1.w2.weight",
                                    "model.layers.1.block_sparse_moe.gate.weight", "lm_head.weight"}) {
        ASSERT_TRUE(exported.contains(name)) << name;
        EXPECT_EQ(exported.entry(name).dtype, DType::bf16);
        EXPECT_EQ(0, std::memcmp(exported.tensor(name).raw(), source.tensor(name).raw(),
                                 source.tensor(name).size_bytes()));
    }
    EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
    EXPECT_TRUE(fs::exists(out / "chat_template.jinja"));
}

TEST_F(QuantizeCliTest, KilledAfterAnyCheckpointResumesToTheSameBytes) {
    for (const char* kill_after : {"1", "3", "5"}) {  // 5: the last, right before export
        const fs::path out = temp_->path() / (std::string("killed_") + kill_after);
        CommandResult killed = quantize(out, {"--test-kill-after-checkpoints", kill_after});
        EXPECT_EQ(killed.signal, SIGKILL) << killed.describe();
        CommandResult fresh_again = quantize(out);
        EXPECT_TRUE(failed_cleanly(fresh_again, {"--resume"}));
        ASSERT_TRUE(succeeded(quantize(out, {"--resume"})));
        expect_same_output(reference(), out);
    }
}

pid_t spawn_fourbit(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {FOURBIT_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid == 0) {
        std::vector<char*> pointers;
        for (std::string& arg : argv) pointers.push_back(arg.data());
        pointers.push_back(nullptr);
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execv(pointers[0], pointers.data());
        _exit(127);
    }
    return pid;
}

TEST_F(QuantizeCliTest, RealKillNineAtVariousMomentsThenResume) {
    const fs::path& expected = reference();
    for (int delay_ms : {0, 30, 120, 400}) {
        const fs::path out = temp_->path() / fmt::format("real_kill_{}", delay_ms);
        const pid_t pid = spawn_fourbit(quantize_args(out));
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        // Before the first complete checkpoint (state and sha256 marker) there is nothing to
        // resume: a fresh run into the same directory is the recovery.
        bool has_checkpoint = false;
        if (fs::exists(out / "calibration")) {
            for (const fs::directory_entry& entry : fs::directory_iterator(out / "calibration")) {
                has_checkpoint |= entry.path().extension() == ".sha256";
            }
        }
        CommandResult recovered = quantize(out, has_checkpoint ? std::vector<std::string>{"--resume"}
                                                               : std::vector<std::string>{});
        ASSERT_TRUE(succeeded(recovered)) << delay_ms << ": " << recovered.describe();
        expect_same_output(expected, out);
    }
}

TEST_F(QuantizeCliTest, OverBudgetSamplesAreDeferredThenFinishedWithALargerBudget) {
    const fs::path out = temp_->path() / "deferred";
    CommandResult first = quantize(out, {"--memory-budget-gb", "0.002"});
    ASSERT_TRUE(succeeded(first));
    EXPECT_NE(first.out.find("deferred"), std::string::npos) << first.out;
    EXPECT_NE(first.out.find("--resume"), std::string::npos) << first.out;
    EXPECT_TRUE(shard_files(out).empty());
    const nlohmann::json report = read_json(out / "calibration" / "report.json");
    EXPECT_EQ(report["status"], "deferred_left");
    EXPECT_GT(report["samples"]["deferred"].size(), 0u);
    EXPECT_GT(report["samples"]["done"], 0);
    ASSERT_TRUE(succeeded(quantize(out, {"--resume", "--memory-budget-gb", "1"})));
    expect_same_output(reference(), out);
}

TEST_F(QuantizeCliTest, WallClockSoftStopThenResumeAndHardStop) {
    const fs::path out = temp_->path() / "soft";
    CommandResult soft = quantize(out, {"--wallclock-budget-s", "0.000001"});
    ASSERT_TRUE(succeeded(soft));
    EXPECT_NE(soft.out.find("wall-clock budget"), std::string::npos) << soft.out;
    EXPECT_NE(soft.out.find("--resume"), std::string::npos);
    EXPECT_EQ(read_json(out / "calibration" / "report.json")["status"], "soft_stopped");
    ASSERT_TRUE(succeeded(quantize(out, {"--resume"})));
    expect_same_output(reference(), out);

    const fs::path hard_out = temp_->path() / "hard";
    CommandResult hard = quantize(hard_out, {"--wallclock-hard-s", "0.001"});
    EXPECT_TRUE(hard.exited);
    EXPECT_EQ(hard.exit_code, 3) << hard.describe();
    EXPECT_NE(hard.err.find("hard limit"), std::string::npos) << hard.err;
}

TEST_F(QuantizeCliTest, StarvedExpertsAreRescuedByPolicyOrAbortTheRun) {
    const nlohmann::json base = read_json(reference() / "calibration" / "report.json");
    // A threshold that starves some experts but leaves each quantized layer a well-fed one.
    int64_t threshold = INT64_MAX;
    for (int layer : {1, 2}) {
        threshold = std::min(threshold, base["expert_tokens"]["layers"][layer]["max"].get<int64_t>());
    }
    const fs::path recipe = temp_->path() / "recipe.json";
    write_json(recipe, {{"starved_min_tokens", threshold}, {"starved_expert_pct_abort", 100}});
    const fs::path out = temp_->path() / "starved";
    ASSERT_TRUE(succeeded(quantize(out, {"--recipe", recipe.string()})));
    const nlohmann::json report = read_json(out / "calibration" / "report.json");
    const nlohmann::json& starved = report["starved_experts"]["starved"];
    ASSERT_GT(starved.size(), 0u);
    EXPECT_LT(starved.size(), 32u);
    for (const nlohmann::json& s : starved) {
        const std::string prefix =
            fmt::format("model.layers.{}.block_sparse_moe.experts.", s["layer"].get<int>());
        const std::string expert = prefix + std::to_string(s["expert"].get<int>());
        const nlohmann::json& amax = report["amax"];
        // w1/w3: the router input's amax; w2: the largest well-fed sibling's.
        EXPECT_EQ(amax[expert + ".w1"]["input_amax"],
                  amax[fmt::format("model.layers.{}.block_sparse_moe.gate", s["layer"].get<int>())]
                      ["input_amax_observed"]);
        EXPECT_EQ(amax[expert + ".w3"]["input_amax"], amax[expert + ".w1"]["input_amax"]);
        float sibling = 0;
        for (int e = 0; e < 16; ++e) {
            bool is_starved = false;
            for (const nlohmann::json& t : starved) {
                is_starved |= t["layer"] == s["layer"] && t["expert"] == e;
            }
            if (!is_starved) {
                sibling = std::max(sibling, amax[prefix + std::to_string(e) + ".w2"]
                                                ["input_amax_observed"].get<float>());
            }
        }
        EXPECT_EQ(amax[expert + ".w2"]["input_amax"].get<float>(), sibling);
    }
    write_json(recipe, {{"starved_min_tokens", threshold}, {"starved_expert_pct_abort", 0.5}});
    CommandResult aborted = quantize(temp_->path() / "aborted", {"--recipe", recipe.string()});
    EXPECT_TRUE(failed_cleanly(aborted, {"starved", "STARVED_EXPERT_PCT_ABORT"}));
    EXPECT_EQ(read_json(temp_->path() / "aborted" / "calibration" / "report.json")["status"],
              "aborted_starved_experts");
}

TEST_F(QuantizeCliTest, BadRecordsNameFileAndLineOrAreSkippedAndCounted) {
    std::string text = read_file(data_ / "chat.jsonl");
    write_file(data_ / "chat.jsonl", text + "{\"prompt\": \"no known layout\"}\n");
    const std::string where = (data_ / "chat.jsonl").string() + ":7";
    EXPECT_TRUE(failed_cleanly(quantize(temp_->path() / "bad"), {where, "prompt"}));
    const fs::path out = temp_->path() / "skipped";
    ASSERT_TRUE(succeeded(quantize(out, {"--skip-bad-records"})));
    const nlohmann::json report = read_json(out / "calibration" / "report.json");
    EXPECT_EQ(report["datasets"][2]["skipped_bad_records"], 1);
}

TEST_F(QuantizeCliTest, ExportOnlyReexportsAndAResumeNeedsTheSameData) {
    const fs::path out = temp_->path() / "export_only";
    fs::create_directories(out);
    fs::copy(reference() / "calibration", out / "calibration");
    ASSERT_TRUE(succeeded(quantize(out, {"--export-only"})));
    expect_same_output(reference(), out);
    std::vector<std::string> args = quantize_args(out);
    args[args.size() - 5] = "2";  // --samples-per-dataset 2: another queue
    args.push_back("--resume");
    EXPECT_TRUE(failed_cleanly(run_fourbit(args), {"other calibration samples"}));
}

TEST_F(QuantizeCliTest, RecipeEnvironmentAndTheModelOptLayout) {
    const fs::path out = temp_->path() / "modelopt";
    const fs::path recipe = temp_->path() / "recipe.json";
    write_json(recipe, {{"datasets", {(data_ / "code.jsonl").string(), (data_ / "tools.jsonl").string()}},
                        {"format", "modelopt"}, {"samples_per_dataset", 9}, {"held_out_samples", 1}});
    setenv("INPUT_DIR", tiny_dir().c_str(), 1);
    setenv("OUTPUT_DIR", out.c_str(), 1);
    setenv("NUM_CALIB_PER_DS", "2", 1);
    setenv("CKPT_EVERY", "3", 1);
    CommandResult result = run_fourbit({"quantize", "--recipe", recipe.string()});
    for (const char* name : {"INPUT_DIR", "OUTPUT_DIR", "NUM_CALIB_PER_DS", "CKPT_EVERY"}) unsetenv(name);
    ASSERT_TRUE(succeeded(result));
    const nlohmann::json report = read_json(out / "calibration" / "report.json");
    EXPECT_EQ(report["datasets"][0]["queued"], 2);
    // nvfp4.md §2.1, field by field.
    const nlohmann::json quant = read_json(out / "hf_quant_config.json");
    EXPECT_TRUE(quant["producer"]["name"].is_string());
    EXPECT_EQ(quant["quantization"]["quant_algo"], "NVFP4");
    EXPECT_EQ(quant["quantization"]["group_size"], 16);
    EXPECT_TRUE(quant["quantization"].contains("kv_cache_quant_algo"));
    EXPECT_TRUE(quant["quantization"]["kv_cache_quant_algo"].is_null());
    const auto& excluded = quant["quantization"]["exclude_modules"];
    EXPECT_NE(std::find(excluded.begin(), excluded.end(), "lm_head"), excluded.end());
    const Checkpoint exported = Checkpoint::open(out.string());
    const std::string m = "model.layers.1.block_sparse_moe.experts.2.w2";
    EXPECT_EQ(exported.entry(m + ".weight").dtype, DType::u8);
    EXPECT_EQ(exported.entry(m + ".weight").shape, (Shape{256, 64}));
    EXPECT_EQ(exported.entry(m + ".weight_scale").dtype, DType::f8_e4m3);
    EXPECT_EQ(exported.entry(m + ".weight_scale").shape, (Shape{256, 8}));
    EXPECT_EQ(exported.entry(m + ".weight_scale_2").dtype, DType::f32);
    EXPECT_EQ(exported.entry(m + ".weight_scale_2").shape, Shape{});
    EXPECT_EQ(exported.entry(m + ".input_scale").shape, Shape{});
    const float amax = report["amax"][m]["input_amax"].get<float>();
    EXPECT_NEAR(*exported.tensor(m + ".input_scale").data<float>() / (amax / 2688.0), 1.0, 4e-7);
    EXPECT_TRUE(succeeded(run_fourbit({"inspect", out.string()})));
}

// MiniMax's official format read in place: FP8 E4M3 weights times their 128x128
// `weight_scale_inv` blocks are what gets quantized (or written as BF16 where ignored).
TEST_F(QuantizeCliTest, ReadsMiniMaxFp8BlocksDirectly) {
    const fs::path model = temp_->path() / "fp8";
    copy_model_dir(fs::path(FOURBIT_SOURCE_DIR) / "tests/golden/minimax_m2/fp8", model);
    std::string ids;
    for (int r = 0; r < 5; ++r) {
        nlohmann::json row = nlohmann::json::array();
        for (int i = 0; i < 20 + 5 * r; ++i) row.push_back((r * 131 + i * 37) % 512);
        ids += nlohmann::json{{"input_ids", row}}.dump() + "\n";
    }
    write_file(data_ / "ids.jsonl", ids);
    const fs::path out = temp_->path() / "fp8_out";
    // Its experts' K of 136 is no multiple of 16: w2 stays unquantized (BF16).
    CommandResult result = run_fourbit(
        {"quantize", "--model", model.string(), "--out", out.string(), "--dataset",
         (data_ / "ids.jsonl").string(), "--samples-per-dataset", "4", "--held-out-samples", "1",
         "--ignore", "lm_head", "--ignore", "*block_sparse_moe.gate", "--ignore", "*.w2"});
    ASSERT_TRUE(succeeded(result));
    EXPECT_TRUE(succeeded(run_fourbit({"inspect", out.string()})));
    const Checkpoint source = Checkpoint::open(model.string());
    const Checkpoint exported = Checkpoint::open(out.string());
    auto dequantized = [&](const std::string& prefix) {
        const Tensor w = source.tensor(prefix + ".weight");
        const Tensor s = source.tensor(prefix + ".weight_scale_inv");
        EXPECT_EQ(w.dtype(), DType::f8_e4m3);
        std::vector<float> values(w.numel());
        for (int64_t r = 0; r < w.dim(0); ++r) {
            for (int64_t c = 0; c < w.dim(1); ++c) {
                values[r * w.dim(1) + c] = f8_e4m3_to_f32(w.data<uint8_t>()[r * w.dim(1) + c]) *
                                           s.data<float>()[(r / 128) * s.dim(1) + c / 128];
            }
        }
        return values;
    };
    const std::string expert = "model.layers.1.block_sparse_moe.experts.2.";
    float amax = 0;
    for (const char* m : {"w1", "w3"}) {
        for (float v : dequantized(expert + m)) amax = std::max(amax, std::fabs(v));
    }
    const std::vector<float> w1 = dequantized(expert + "w1");
    const NvFp4Matrix expected =
        quantize_nvfp4(w1, 136, 160, nvfp4_export_global_scale(amax), expert + "w1");
    const Tensor packed = exported.tensor(expert + "w1.weight_packed");
    ASSERT_EQ(packed.size_bytes(), expected.packed.size());
    EXPECT_EQ(0, std::memcmp(packed.raw(), expected.packed.data(), packed.size_bytes()));
    const Tensor w2 = exported.tensor(expert + "w2.weight");
    ASSERT_EQ(w2.dtype(), DType::bf16);
    const std::vector<float> w2_values = dequantized(expert + "w2");
    for (size_t i = 0; i < w2_values.size(); ++i) {
        ASSERT_EQ(w2.data<uint16_t>()[i], f32_to_bf16(w2_values[i])) << i;
    }
    EXPECT_FALSE(read_json(out / "config.json")["quantization_config"].contains("weight_block_size"));
}

TEST_F(QuantizeCliTest, EvalReportsKlTopOneAndPerplexityPerDataset) {
    const fs::path out = reference();
    CommandResult same = run_fourbit({"eval", "--model", tiny_dir().string(), "--reference",
                                      tiny_dir().string(), "--data",
                                      (data_ / "tools.jsonl").string(), "--max-samples", "2",
                                      "--output", "json"});
    ASSERT_TRUE(succeeded(same));
    const nlohmann::json self = nlohmann::json::parse(same.out);
    EXPECT_NEAR(self["all"]["mean_kl"].get<double>(), 0.0, 1e-9);
    EXPECT_EQ(self["all"]["top1_agreement"], 1.0);
    CommandResult quantized = run_fourbit(
        {"eval", "--model", out.string(), "--reference", tiny_dir().string(), "--data",
         (data_ / "tools.jsonl").string(), "--data", (data_ / "chat.jsonl").string(),
         "--max-samples", "2", "--json", (temp_->path() / "eval.json").string()});
    ASSERT_TRUE(succeeded(quantized));
    EXPECT_NE(quantized.out.find("mean KL"), std::string::npos) << quantized.out;
    const nlohmann::json result = read_json(temp_->path() / "eval.json");
    for (const char* name : {"tools", "chat"}) {
        const nlohmann::json& d = result["datasets"][name];
        EXPECT_GT(d["mean_kl"].get<double>(), 0.0) << name;
        EXPECT_LT(d["mean_kl"].get<double>(), 1.0) << name;
        EXPECT_GT(d["top1_agreement"].get<double>(), 0.5) << name;
        EXPECT_TRUE(std::isfinite(d["perplexity"].get<double>()));
    }
    EXPECT_TRUE(failed_cleanly(run_fourbit({"eval", "--model", out.string(), "--data",
                                            (temp_->path() / "missing.jsonl").string()}),
                               {"missing.jsonl"}));
}

}  // namespace
}  // namespace fourbit::cli_test
