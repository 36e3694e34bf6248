// Bad input through the real binary: each case must end with a non-zero exit (1 or a CLI11
// usage code), one error line on stderr naming the offending file, tensor or field, and never
// a crash. Each test corrupts its own copy of the tiny model.
#include <gtest/gtest.h>

#include <functional>

#include "formats/safetensors.h"
#include "integration/cli_helpers.h"

namespace fourbit::cli_test {
namespace {

class BadInputCli : public CliTest {
protected:
    // A private copy of the tiny model (one shard) or its 5 MB-shard twin.
    fs::path copy_of_tiny(bool sharded = false) {
        const fs::path model = temp_->path() / "model";
        copy_model_dir(sharded ? tiny_sharded_dir() : tiny_dir(), model);
        return model;
    }
    CommandResult logits(const fs::path& model, const std::string& ids = "5,17,3") {
        return run_fourbit({"logits", "--model", model.string(), "--ids", ids, "--out",
                            (temp_->path() / "logits.safetensors").string()});
    }
    // Rewrites one shard through `edit`, which may change the list of its tensors.
    static void rewrite_shard(const fs::path& shard,
                              const std::function<void(std::vector<NamedTensor>&)>& edit) {
        auto file = SafetensorsFile::open(shard.string());
        std::vector<NamedTensor> tensors;
        for (const SafetensorsEntry& entry : file->entries()) {
            tensors.push_back({entry.name, file->tensor(entry.name)});
        }
        edit(tensors);
        write_safetensors(shard.string(), tensors, file->metadata());
    }
    static std::string name_of(const fs::path& path) { return path.filename().string(); }
};

TEST_F(BadInputCli, TruncatedShard) {
    const fs::path model = copy_of_tiny();
    const fs::path shard = shard_files(model).at(0);
    fs::resize_file(shard, fs::file_size(shard) / 2);
    EXPECT_TRUE(failed_cleanly(logits(model), {name_of(shard)}));
}

TEST_F(BadInputCli, HeaderLengthLargerThanTheFile) {
    const fs::path model = copy_of_tiny();
    const fs::path shard = shard_files(model).at(0);
    std::string bytes = read_file(shard);
    set_header_length(bytes, bytes.size() + 1000);
    write_file(shard, bytes);
    EXPECT_TRUE(failed_cleanly(logits(model), {name_of(shard), "header"}));
}

TEST_F(BadInputCli, HeaderLengthShorterThanTheJson) {
    const fs::path model = copy_of_tiny();
    const fs::path shard = shard_files(model).at(0);
    std::string bytes = read_file(shard);
    set_header_length(bytes, header_length(bytes) - 40);
    write_file(shard, bytes);
    EXPECT_TRUE(failed_cleanly(logits(model), {name_of(shard), "JSON"}));
}

TEST_F(BadInputCli, ShardListedInTheIndexIsMissing) {
    const fs::path model = copy_of_tiny(/*sharded=*/true);
    std::vector<fs::path> shards = shard_files(model);
    ASSERT_GE(shards.size(), 2u);
    fs::remove(shards[1]);
    EXPECT_TRUE(failed_cleanly(logits(model), {name_of(shards[1])}));
}

TEST_F(BadInputCli, TensorOfTheWrongShape) {
    const fs::path model = copy_of_tiny(/*sharded=*/true);
    const std::string bad = "model.layers.0.self_attn.q_norm.weight";
    rewrite_shard(shard_of(model, bad), [&](std::vector<NamedTensor>& tensors) {
        for (NamedTensor& tensor : tensors) {
            if (tensor.name == bad) tensor.tensor = Tensor::zeros(DType::bf16, {8, 64});
        }
    });
    EXPECT_TRUE(failed_cleanly(logits(model), {bad, "[8, 64]"}));
}

TEST_F(BadInputCli, UnknownDtypeInTheHeader) {
    const fs::path model = copy_of_tiny(/*sharded=*/true);
    const std::string bad = "model.layers.0.self_attn.k_norm.weight";
    const fs::path shard = shard_of(model, bad);
    std::string bytes = read_file(shard);
    const size_t header_end = 8 + header_length(bytes);
    size_t name_at = bytes.find("\"" + bad + "\"");
    ASSERT_LT(name_at, header_end);
    size_t dtype_at = bytes.find("\"BF16\"", name_at);
    ASSERT_LT(dtype_at, bytes.find('}', name_at)) << "the dtype of that tensor's entry";
    bytes.replace(dtype_at, 6, "\"F7\"  ");  // same length; the spaces are JSON whitespace
    write_file(shard, bytes);
    EXPECT_TRUE(failed_cleanly(logits(model), {name_of(shard), bad, "F7"}));
}

TEST_F(BadInputCli, MissingTensor) {
    const fs::path model = copy_of_tiny(/*sharded=*/true);
    const std::string gone = "model.layers.1.self_attn.k_norm.weight";
    rewrite_shard(shard_of(model, gone), [&](std::vector<NamedTensor>& tensors) {
        std::erase_if(tensors, [&](const NamedTensor& tensor) { return tensor.name == gone; });
    });
    nlohmann::json index = read_json(model / "model.safetensors.index.json");
    ASSERT_EQ(index["weight_map"].erase(gone), 1u);
    write_json(model / "model.safetensors.index.json", index);
    EXPECT_TRUE(failed_cleanly(logits(model), {gone}));
}

TEST_F(BadInputCli, ConfigJsonIsNotJson) {
    const fs::path model = copy_of_tiny();
    write_file(model / "config.json", "{\"model_type\": \"minimax_m2\", oops");
    EXPECT_TRUE(failed_cleanly(logits(model), {"config.json"}));
}

TEST_F(BadInputCli, ConfigWithPerHeadQkNorm) {
    const fs::path model = copy_of_tiny();
    nlohmann::json config = read_json(model / "config.json");
    config["qk_norm_type"] = "per_head";
    write_json(model / "config.json", config);
    EXPECT_TRUE(failed_cleanly(logits(model), {"config.json", "qk_norm_type", "per_head"}));
}

TEST_F(BadInputCli, ConfigWithALinearAttentionLayer) {
    const fs::path model = copy_of_tiny();
    nlohmann::json config = read_json(model / "config.json");
    config["attn_type_list"] = {1, 1, 0, 1};
    write_json(model / "config.json", config);
    EXPECT_TRUE(failed_cleanly(logits(model), {"config.json", "layer 2"}));
}

TEST_F(BadInputCli, TokenIdOutsideTheVocabulary) {
    EXPECT_TRUE(failed_cleanly(logits(tiny_dir(), "5,999999"), {"999999"}));
    EXPECT_TRUE(failed_cleanly(
        run_fourbit({"generate", "--model", tiny_dir().string(), "--prompt-ids", "5,999999"}),
        {"999999"}));
    EXPECT_FALSE(fs::exists(temp_->path() / "logits.safetensors"));
}

TEST_F(BadInputCli, NonNumericTokenId) {
    EXPECT_TRUE(failed_cleanly(logits(tiny_dir(), "5,x"), {"--ids", "'x'"}));
}

TEST_F(BadInputCli, ModelDirectoryDoesNotExist) {
    const fs::path missing = temp_->path() / "no_such_model";
    EXPECT_TRUE(failed_cleanly(logits(missing), {missing.string()}));
}

TEST_F(BadInputCli, ModelDirectoryWithoutConfigJson) {
    const fs::path model = copy_of_tiny();
    fs::remove(model / "config.json");
    EXPECT_TRUE(failed_cleanly(logits(model), {model.string(), "config.json"}));
}

TEST_F(BadInputCli, GenerateWithTopPZero) {
    CommandResult result = run_fourbit({"generate", "--model", tiny_dir().string(), "--prompt-ids",
                                        "5,17,3", "--top-p", "0", "--max-tokens", "2"});
    EXPECT_TRUE(failed_cleanly(result, {"top_p"}));
    EXPECT_EQ(result.out, "") << "nothing generated";
}

// `--layers 0` once meant "not given" and silently wrote the preset's 4 layers.
TEST_F(BadInputCli, MakeModelWithZeroLayers) {
    const fs::path out = temp_->path() / "zero";
    CommandResult result =
        run_fourbit({"make-model", "--preset", "tiny", "--layers", "0", "--out", out.string()});
    EXPECT_TRUE(failed_cleanly(result, {"--layers"}));
    EXPECT_TRUE(failed_cleanly(
        run_fourbit({"make-model", "--preset", "tiny", "--layers", "-1", "--dry-run"}),
        {"--layers"}));
}

}  // namespace
}  // namespace fourbit::cli_test
