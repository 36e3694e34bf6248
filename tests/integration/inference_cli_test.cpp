// `fourbit logits` and `fourbit generate` through the real binary: output formats, causality,
// determinism, agreement between the two commands, EOS handling, and the transformers golden
// greedy continuation reproduced end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "formats/safetensors.h"
#include "integration/cli_helpers.h"

namespace fourbit::cli_test {
namespace {

class LogitsCli : public CliTest {
protected:
    LogitsFile logits_of(const std::string& ids, const std::string& name) {
        const fs::path out = temp_->path() / name;
        CommandResult result = run_fourbit(
            {"logits", "--model", tiny_dir().string(), "--ids", ids, "--out", out.string()});
        EXPECT_TRUE(succeeded(result));
        if (!fs::exists(out)) return {};
        return read_logits(out);
    }
};

class GenerateCli : public CliTest {
protected:
    // `generate --output json` on `model`; the parsed JSON ({} after a reported failure).
    nlohmann::json generate(const fs::path& model, const std::vector<std::string>& flags) {
        std::vector<std::string> args = {"generate", "--model",  model.string(), "--prompt-ids",
                                         "5,17,3",   "--output", "json"};
        args.insert(args.end(), flags.begin(), flags.end());
        CommandResult result = run_fourbit(args);
        EXPECT_TRUE(succeeded(result));
        return result.exited && result.exit_code == 0 ? generate_json(result) : nlohmann::json{};
    }
    static std::vector<int64_t> ids(const nlohmann::json& json) {
        return json.contains("token_ids") ? json["token_ids"].get<std::vector<int64_t>>()
                                          : std::vector<int64_t>{};
    }
};

TEST_F(LogitsCli, WritesF32LogitsOfShapeTokensByVocab) {
    const fs::path out = temp_->path() / "logits.safetensors";
    ASSERT_TRUE(succeeded(run_fourbit(
        {"logits", "--model", tiny_dir().string(), "--ids", "5,17,3", "--out", out.string()})));
    auto file = SafetensorsFile::open(out.string());
    ASSERT_NE(file->find("logits"), nullptr);
    EXPECT_EQ(dtype_name(file->find("logits")->dtype), "F32");
    EXPECT_EQ(shape_text(file->find("logits")->shape), shape_text({3, kTinyVocab}));
    LogitsFile logits = read_logits(out);
    ASSERT_EQ(logits.values.size(), 3u * kTinyVocab);
    for (size_t i = 0; i < logits.values.size(); ++i) {
        ASSERT_TRUE(std::isfinite(logits.values[i])) << "element " << i;
    }
    // Rows differ: each position sees a different context.
    EXPECT_NE(std::vector<float>(logits.values.begin(), logits.values.begin() + kTinyVocab),
              std::vector<float>(logits.values.begin() + kTinyVocab,
                                 logits.values.begin() + 2 * kTinyVocab));
}

TEST_F(LogitsCli, EarlierRowsDoNotSeeLaterTokens) {
    LogitsFile three = logits_of("5,17,3", "three.safetensors");
    LogitsFile two = logits_of("5,17", "two.safetensors");
    ASSERT_EQ(three.rows, 3);
    ASSERT_EQ(two.rows, 2);
    float largest = 0;
    for (int64_t row = 0; row < 2; ++row) {
        for (int64_t v = 0; v < kTinyVocab; ++v) {
            largest = std::max(largest, std::fabs(three.at(row, v) - two.at(row, v)));
        }
    }
    EXPECT_LT(largest, 1e-4f) << "appending a token changed the logits of earlier positions";
    // And the third token does matter to its own row.
    LogitsFile other = logits_of("5,17,4", "other.safetensors");
    ASSERT_EQ(other.rows, 3);
    float third_row_change = 0;
    for (int64_t v = 0; v < kTinyVocab; ++v) {
        third_row_change = std::max(third_row_change, std::fabs(three.at(2, v) - other.at(2, v)));
    }
    EXPECT_GT(third_row_change, 1e-3f);
}

TEST_F(GenerateCli, SpeculationChangesNoGreedyToken) {
    // Random weights loop, so single-token n-gram matches are frequent: drafts are verified.
    const std::vector<std::string> greedy = {"--temperature", "0", "--ignore-eos", "--max-tokens",
                                             "48"};
    const std::vector<int64_t> plain = ids(generate(tiny_dir(), greedy));
    ASSERT_EQ(plain.size(), 48u);
    std::vector<std::string> agentic = greedy;
    agentic.insert(agentic.end(), {"--profile", "agentic"});
    EXPECT_EQ(ids(generate(tiny_dir(), agentic)), plain);
    std::vector<std::string> eager = greedy;
    eager.insert(eager.end(),
                 {"--speculative-config",
                  R"({"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":1,)"
                  R"("prompt_lookup_max":3,"adaptive":false})"});
    EXPECT_EQ(ids(generate(tiny_dir(), eager)), plain);
}

TEST_F(GenerateCli, BadSpeculativeFlagsAreRefused) {
    const std::vector<std::string> base = {"generate", "--model", tiny_dir().string(),
                                           "--prompt-ids", "5,17,3"};
    std::vector<std::string> eagle = base;
    eagle.insert(eagle.end(),
                 {"--speculative-config", R"({"method":"eagle","num_speculative_tokens":2})"});
    EXPECT_TRUE(failed_cleanly(run_fourbit(eagle), {"method", "ngram"}));
    std::vector<std::string> both = base;
    both.insert(both.end(), {"--profile", "agentic", "--speculative-config",
                             R"({"method":"ngram","num_speculative_tokens":2})"});
    EXPECT_TRUE(failed_cleanly(run_fourbit(both), {"--profile"}));
}

TEST_F(GenerateCli, JsonOutputHasExactlyMaxTokensIds) {
    for (int n : {1, 5}) {
        nlohmann::json out = generate(
            tiny_dir(), {"--temperature", "0", "--ignore-eos", "--max-tokens", std::to_string(n)});
        std::vector<int64_t> tokens = ids(out);
        ASSERT_EQ(tokens.size(), static_cast<size_t>(n)) << out.dump();
        for (int64_t id : tokens) EXPECT_TRUE(id >= 0 && id < kTinyVocab) << id;
        EXPECT_EQ(out["finish_reason"], "length");
    }
}

TEST_F(GenerateCli, GreedyIsDeterministic) {
    std::vector<std::string> flags = {"--temperature", "0", "--ignore-eos", "--max-tokens", "8"};
    std::vector<int64_t> first = ids(generate(tiny_dir(), flags));
    std::vector<int64_t> second = ids(generate(tiny_dir(), flags));
    ASSERT_EQ(first.size(), 8u);
    EXPECT_EQ(first, second);
}

TEST_F(GenerateCli, FirstGreedyTokenIsArgmaxOfTheLastLogitsRow) {
    const fs::path out = temp_->path() / "logits.safetensors";
    ASSERT_TRUE(succeeded(run_fourbit(
        {"logits", "--model", tiny_dir().string(), "--ids", "5,17,3", "--out", out.string()})));
    LogitsFile logits = read_logits(out);
    ASSERT_EQ(logits.rows, 3);
    const float* last = logits.values.data() + 2 * logits.vocab;
    int64_t argmax = std::max_element(last, last + logits.vocab) - last;
    std::vector<int64_t> tokens =
        ids(generate(tiny_dir(), {"--temperature", "0", "--ignore-eos", "--max-tokens", "1"}));
    ASSERT_EQ(tokens.size(), 1u);
    EXPECT_EQ(tokens[0], argmax);
}

TEST_F(GenerateCli, SamplingWithTheSameSeedIsReproducible) {
    std::vector<std::string> flags = {"--temperature", "1", "--seed", "7", "--ignore-eos",
                                      "--max-tokens",  "12"};
    std::vector<int64_t> first = ids(generate(tiny_dir(), flags));
    std::vector<int64_t> second = ids(generate(tiny_dir(), flags));
    ASSERT_EQ(first.size(), 12u);
    EXPECT_EQ(first, second);
}

TEST_F(GenerateCli, StopsAtTheEosOfGenerationConfig) {
    std::vector<int64_t> greedy =
        ids(generate(tiny_dir(), {"--temperature", "0", "--max-tokens", "5"}));
    ASSERT_EQ(greedy.size(), 5u) << "the preset's eos ([e~[) should not come up here";

    // A copy whose generation_config.json names the first greedy token as EOS.
    const fs::path model = temp_->path() / "model";
    copy_model_dir(tiny_dir(), model);
    nlohmann::json generation = read_json(model / "generation_config.json");
    ASSERT_TRUE(generation["eos_token_id"].is_number_integer());
    generation["eos_token_id"] = greedy[0];
    write_json(model / "generation_config.json", generation);

    nlohmann::json stopped = generate(model, {"--temperature", "0", "--max-tokens", "5"});
    EXPECT_EQ(ids(stopped), std::vector<int64_t>{greedy[0]});
    EXPECT_EQ(stopped["finish_reason"], "stop");

    nlohmann::json ignored =
        generate(model, {"--temperature", "0", "--max-tokens", "5", "--ignore-eos"});
    EXPECT_EQ(ids(ignored), greedy);
    EXPECT_EQ(ignored["finish_reason"], "length");
}

TEST_F(GenerateCli, ReproducesTheTransformersGreedyContinuation) {
    // bf16 is what the brief asks for; fp8 (block-scaled weights) goes through the same path.
    for (const std::string variant : {"bf16", "fp8"}) {
        SCOPED_TRACE(variant);
        // Copied first: the golden files are shared and must never change.
        const fs::path golden = fs::path(FOURBIT_SOURCE_DIR) / "tests/golden/minimax_m2" / variant;
        const fs::path model = temp_->path() / variant;
        copy_model_dir(golden, model);
        auto reference = SafetensorsFile::open((model / "reference.safetensors").string());
        Tensor prompt = reference->tensor("prompt.0");
        Tensor expected = reference->tensor("greedy.0");
        ASSERT_EQ(prompt.dtype(), DType::i64);
        ASSERT_EQ(expected.dtype(), DType::i64);
        ASSERT_EQ(expected.numel(), 32);
        std::vector<int64_t> prompt_ids(prompt.data<int64_t>(),
                                        prompt.data<int64_t>() + prompt.numel());
        std::vector<int64_t> expected_ids(expected.data<int64_t>(),
                                          expected.data<int64_t>() + expected.numel());

        CommandResult result = run_fourbit(
            {"generate", "--model", model.string(), "--prompt-ids", join_ids(prompt_ids),
             "--max-tokens", "32", "--temperature", "0", "--ignore-eos", "--output", "json"});
        ASSERT_TRUE(succeeded(result));
        EXPECT_EQ(ids(generate_json(result)), expected_ids);
    }
}

}  // namespace
}  // namespace fourbit::cli_test
