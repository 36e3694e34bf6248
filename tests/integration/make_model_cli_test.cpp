// `fourbit make-model` through the real binary: the config and checkpoint it writes for the
// tiny preset, reproducibility by seed, sharding, --layers, and the dry-run inventories of the
// larger presets checked against counts made independently of the code (minimax_m2.md §3.3).
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "formats/checkpoint.h"
#include "integration/cli_helpers.h"

namespace fourbit::cli_test {
namespace {

class MakeModelCli : public CliTest {};

// One line of a dry run: "name DTYPE [a, b] bytes".
struct InventoryLine {
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t bytes = 0;
};

struct Inventory {
    std::map<std::string, InventoryLine> tensors;
    size_t n_lines = 0;
    std::optional<uint64_t> total_bytes;  // from the "total N bytes" line
};

Inventory parse_inventory(const std::string& text) {
    Inventory inventory;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        std::istringstream words(line);
        std::string name;
        words >> name;
        if (name == "total") {
            uint64_t total = 0;
            std::string unit;
            words >> total >> unit;
            EXPECT_EQ(unit, "bytes") << line;
            inventory.total_bytes = total;
            continue;
        }
        ++inventory.n_lines;
        InventoryLine entry;
        words >> entry.dtype;
        size_t open = line.find('['), close = line.find(']');
        if (open == std::string::npos || close == std::string::npos) {
            ADD_FAILURE() << "inventory line without a shape: " << line;
            continue;
        }
        std::istringstream extents(line.substr(open + 1, close - open - 1));
        for (std::string extent; std::getline(extents, extent, ',');) {
            entry.shape.push_back(std::stoll(extent));
        }
        entry.bytes = std::stoull(line.substr(close + 1));
        EXPECT_TRUE(inventory.tensors.emplace(name, entry).second) << "listed twice: " << name;
    }
    return inventory;
}

std::vector<int64_t> shape_in(const Inventory& inventory, const std::string& name) {
    auto it = inventory.tensors.find(name);
    if (it == inventory.tensors.end()) {
        ADD_FAILURE() << "the inventory lacks " << name;
        return {};
    }
    return it->second.shape;
}

// Parameters of one M2.7 layer and of the whole model, written out from the shapes in
// minimax_m2.md §3.3 (attention 44,040,192 + norms 13,312 + router 786,432 + bias 256 + 256
// experts x 14,155,776) rather than from the code under test.
constexpr uint64_t kM27LayerParameters =
    44'040'192ull + 13'312 + 786'432 + 256 + 256ull * 14'155'776;
constexpr uint64_t kM27EmbedAndHeadParameters = 2ull * 614'596'608 + 3'072;  // + final norm
static_assert(62 * kM27LayerParameters + kM27EmbedAndHeadParameters == 228'689'764'864ull);

TEST_F(MakeModelCli, TinyConfigHasThePresetShapes) {
    nlohmann::json config = read_json(tiny_dir() / "config.json");
    EXPECT_EQ(config["model_type"], "minimax_m2");
    EXPECT_EQ(config["rotary_dim"], 32);
    EXPECT_EQ(config["head_dim"], 64);
    EXPECT_EQ(config["num_attention_heads"], 8);
    EXPECT_EQ(config["num_key_value_heads"], 2);
    EXPECT_EQ(config["num_local_experts"], 16);
    EXPECT_EQ(config["num_experts_per_tok"], 4);
    EXPECT_EQ(config["intermediate_size"], 128);
    EXPECT_EQ(config["hidden_size"], 256);
    EXPECT_EQ(config["num_hidden_layers"], 4);
    EXPECT_EQ(config["vocab_size"], kTinyVocab);
    EXPECT_EQ(config["qk_norm_type"], "per_layer");
    EXPECT_EQ(config["attn_type_list"], nlohmann::json({1, 1, 1, 1}));

    // The configs' bos and eos are the ids the checkpoint's own tokenizer gives MiniMax-M2's
    // turn-start and end-of-turn tokens, as M2.7's generation_config.json has them.
    nlohmann::json generation = read_json(tiny_dir() / "generation_config.json");
    nlohmann::json tokenizer = read_json(tiny_dir() / "tokenizer.json");
    std::map<std::string, int64_t> added;
    for (const auto& token : tokenizer["added_tokens"]) added[token["content"]] = token["id"];
    EXPECT_EQ(generation["eos_token_id"], added.at("[e~["));
    EXPECT_EQ(generation["bos_token_id"], added.at("]~b]"));
    EXPECT_EQ(config["eos_token_id"], added.at("[e~["));
    EXPECT_EQ(added.size(), 64u);
    for (const auto& [content, id] : added) EXPECT_LT(id, kTinyVocab) << content;

    nlohmann::json index = read_json(tiny_dir() / "model.safetensors.index.json");
    ASSERT_TRUE(index["weight_map"].is_object());
    ASSERT_TRUE(index["metadata"]["total_size"].is_number_unsigned());
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
        ASSERT_TRUE(fs::exists(tiny_dir() / shard.get<std::string>())) << tensor << " -> " << shard;
    }
}

TEST_F(MakeModelCli, TinyCheckpointHasTheOfficialTensorNamesAndShapes) {
    Checkpoint checkpoint = Checkpoint::open(tiny_dir().string());
    const std::map<std::string, Shape> expected = {
        {"model.embed_tokens.weight", {4096, 256}},
        {"model.layers.0.input_layernorm.weight", {256}},
        {"model.layers.3.self_attn.q_proj.weight", {512, 256}},
        {"model.layers.3.self_attn.k_proj.weight", {128, 256}},
        {"model.layers.3.self_attn.v_proj.weight", {128, 256}},
        {"model.layers.3.self_attn.o_proj.weight", {256, 512}},
        {"model.layers.3.self_attn.q_norm.weight", {512}},  // per-layer QK-norm: the full width
        {"model.layers.3.self_attn.k_norm.weight", {128}},
        {"model.layers.3.post_attention_layernorm.weight", {256}},
        {"model.layers.3.block_sparse_moe.gate.weight", {16, 256}},
        {"model.layers.3.block_sparse_moe.e_score_correction_bias", {16}},
        {"model.layers.3.block_sparse_moe.experts.15.w1.weight", {128, 256}},
        {"model.layers.3.block_sparse_moe.experts.15.w2.weight", {256, 128}},
        {"model.layers.3.block_sparse_moe.experts.15.w3.weight", {128, 256}},
        {"model.norm.weight", {256}},
        {"lm_head.weight", {4096, 256}},
    };
    for (const auto& [name, shape] : expected) {
        ASSERT_TRUE(checkpoint.contains(name)) << name;
        EXPECT_EQ(shape_text(checkpoint.entry(name).shape), shape_text(shape)) << name;
        EXPECT_EQ(dtype_name(checkpoint.entry(name).dtype), "BF16") << name;
    }
    EXPECT_FALSE(checkpoint.contains("model.layers.4.input_layernorm.weight"));
    EXPECT_FALSE(checkpoint.contains("model.layers.0.block_sparse_moe.experts.16.w1.weight"));
    // embed + 4 layers x (10 + 16 experts x 3) + final norm + lm_head: nothing else.
    EXPECT_EQ(checkpoint.tensor_names().size(), 1u + 4 * (10 + 16 * 3) + 2);
}

TEST_F(MakeModelCli, SameSeedGivesIdenticalBytesAndOtherSeedDiffers) {
    ASSERT_TRUE(succeeded(
        run_fourbit({"make-model", "--preset", "tiny", "--seed", "1", "--out", *temp_ / "again"})));
    ASSERT_TRUE(succeeded(
        run_fourbit({"make-model", "--preset", "tiny", "--seed", "2", "--out", *temp_ / "other"})));
    std::vector<fs::path> original = shard_files(tiny_dir());
    std::vector<fs::path> again = shard_files(*temp_ / "again");
    std::vector<fs::path> other = shard_files(*temp_ / "other");
    ASSERT_FALSE(original.empty());
    ASSERT_EQ(again.size(), original.size());
    ASSERT_EQ(other.size(), original.size());
    for (size_t i = 0; i < original.size(); ++i) {
        std::string bytes = read_file(original[i]);
        EXPECT_TRUE(bytes == read_file(again[i])) << "seed 1 twice differs in " << again[i];
        EXPECT_FALSE(bytes == read_file(other[i])) << "seeds 1 and 2 agree in " << other[i];
    }
    EXPECT_EQ(read_file(tiny_dir() / "config.json"), read_file(*temp_ / "again/config.json"));
}

TEST_F(MakeModelCli, SmallShardsStillLoadAndGiveTheSameLogits) {
    // The 5 MB-shard copy of the tiny model was made by the fixture with the same seed.
    std::vector<fs::path> shards = shard_files(tiny_sharded_dir());
    EXPECT_GE(shards.size(), 3u) << "19 MB of weights in 5 MB shards";
    EXPECT_EQ(shard_files(tiny_dir()).size(), 1u) << "the default shard size is 2000 MB";
    nlohmann::json index = read_json(tiny_sharded_dir() / "model.safetensors.index.json");
    std::set<std::string> named;
    for (const auto& [tensor, shard] : index["weight_map"].items())
        named.insert(shard.get<std::string>());
    EXPECT_EQ(named.size(), shards.size()) << "every shard is named by the index";
    for (const fs::path& shard : shards) {
        // A shard over the limit may only hold one tensor larger than the limit.
        if (fs::file_size(shard) > 5'100'000) {
            EXPECT_EQ(SafetensorsFile::open(shard.string())->entries().size(), 1u) << shard;
        }
    }

    ASSERT_TRUE(succeeded(run_fourbit({"logits", "--model", tiny_sharded_dir().string(), "--ids",
                                       "5,17,3", "--out", *temp_ / "sharded.safetensors"})));
    ASSERT_TRUE(succeeded(run_fourbit({"logits", "--model", tiny_dir().string(), "--ids", "5,17,3",
                                       "--out", *temp_ / "single.safetensors"})));
    LogitsFile sharded = read_logits(*temp_ / "sharded.safetensors");
    LogitsFile single = read_logits(*temp_ / "single.safetensors");
    ASSERT_EQ(sharded.rows, 3);
    EXPECT_EQ(sharded.values, single.values) << "same weights, other sharding";
}

TEST_F(MakeModelCli, LayersFlagOverridesTheLayerCount) {
    ASSERT_TRUE(succeeded(
        run_fourbit({"make-model", "--preset", "tiny", "--layers", "2", "--out", *temp_ / "two"})));
    nlohmann::json config = read_json(*temp_ / "two/config.json");
    EXPECT_EQ(config["num_hidden_layers"], 2);
    EXPECT_EQ(config["attn_type_list"].size(), 2u);
    Checkpoint checkpoint = Checkpoint::open(*temp_ / "two");
    EXPECT_TRUE(checkpoint.contains("model.layers.1.block_sparse_moe.experts.15.w3.weight"));
    EXPECT_FALSE(checkpoint.contains("model.layers.2.input_layernorm.weight"));
    EXPECT_EQ(checkpoint.tensor_names().size(), 1u + 2 * (10 + 16 * 3) + 2);
    // And it runs.
    EXPECT_TRUE(succeeded(run_fourbit({"logits", "--model", *temp_ / "two", "--ids", "1,2", "--out",
                                       *temp_ / "two.safetensors"})));
}

TEST_F(MakeModelCli, DryRunOfM27TotalsTheIndependentParameterCountAndWritesNothing) {
    const fs::path out = temp_->path() / "m2.7";
    CommandResult result =
        run_fourbit({"make-model", "--preset", "m2.7", "--dry-run", "--out", out.string()});
    ASSERT_TRUE(succeeded(result));
    Inventory inventory = parse_inventory(result.out);
    ASSERT_TRUE(inventory.total_bytes) << "no 'total N bytes' line";
    EXPECT_EQ(*inventory.total_bytes, 2ull * 228'689'764'864ull) << "BF16 x §3.3's count";
    // embed + 62 layers x (10 + 256 experts x 3) + final norm + lm_head.
    EXPECT_EQ(inventory.n_lines, 1u + 62 * (10 + 256 * 3) + 2);
    uint64_t sum = 0;
    for (const auto& [name, line] : inventory.tensors) sum += line.bytes;
    EXPECT_EQ(sum, *inventory.total_bytes) << "the lines add up to the total";
    EXPECT_EQ(shape_in(inventory, "model.layers.61.block_sparse_moe.experts.255.w2.weight"),
              (std::vector<int64_t>{3072, 1536}));
    EXPECT_EQ(shape_in(inventory, "lm_head.weight"), (std::vector<int64_t>{200064, 3072}));
    EXPECT_EQ(inventory.tensors.count("model.layers.62.input_layernorm.weight"), 0u)
        << "no MTP layers";
    EXPECT_FALSE(fs::exists(out)) << "--dry-run wrote " << out;
    EXPECT_TRUE(fs::is_empty(temp_->path()));
}

TEST_F(MakeModelCli, DryRunOfM27SliceHasFourLayers) {
    CommandResult result = run_fourbit({"make-model", "--preset", "m2.7-slice", "--dry-run"});
    ASSERT_TRUE(succeeded(result));
    Inventory inventory = parse_inventory(result.out);
    ASSERT_TRUE(inventory.total_bytes);
    EXPECT_EQ(*inventory.total_bytes, 2 * (4 * kM27LayerParameters + kM27EmbedAndHeadParameters));
    EXPECT_EQ(inventory.n_lines, 1u + 4 * (10 + 256 * 3) + 2);
    EXPECT_EQ(inventory.tensors.count("model.layers.3.block_sparse_moe.gate.weight"), 1u);
    EXPECT_EQ(inventory.tensors.count("model.layers.4.block_sparse_moe.gate.weight"), 0u);
}

TEST_F(MakeModelCli, SmallPresetHasItsShapes) {
    CommandResult result = run_fourbit({"make-model", "--preset", "small", "--dry-run"});
    ASSERT_TRUE(succeeded(result));
    Inventory inventory = parse_inventory(result.out);
    using S = std::vector<int64_t>;
    EXPECT_EQ(shape_in(inventory, "model.embed_tokens.weight"), (S{8192, 1024}));
    EXPECT_EQ(shape_in(inventory, "lm_head.weight"), (S{8192, 1024}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.self_attn.q_proj.weight"), (S{16 * 128, 1024}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.self_attn.k_proj.weight"), (S{4 * 128, 1024}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.self_attn.o_proj.weight"), (S{1024, 16 * 128}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.self_attn.q_norm.weight"), (S{16 * 128}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.self_attn.k_norm.weight"), (S{4 * 128}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.block_sparse_moe.gate.weight"), (S{32, 1024}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.block_sparse_moe.experts.31.w1.weight"),
              (S{512, 1024}));
    EXPECT_EQ(shape_in(inventory, "model.layers.7.block_sparse_moe.experts.31.w2.weight"),
              (S{1024, 512}));
    EXPECT_EQ(inventory.tensors.count("model.layers.8.input_layernorm.weight"), 0u);
    EXPECT_EQ(inventory.tensors.count("model.layers.0.block_sparse_moe.experts.32.w1.weight"), 0u);
    EXPECT_EQ(inventory.n_lines, 1u + 8 * (10 + 32 * 3) + 2);

    // What the inventory cannot show (head count vs head width, RoPE, top-k) is in config.json;
    // one layer keeps the write to ~150 MB.
    ASSERT_TRUE(succeeded(run_fourbit(
        {"make-model", "--preset", "small", "--layers", "1", "--out", *temp_ / "small"})));
    nlohmann::json config = read_json(*temp_ / "small/config.json");
    EXPECT_EQ(config["hidden_size"], 1024);
    EXPECT_EQ(config["num_attention_heads"], 16);
    EXPECT_EQ(config["num_key_value_heads"], 4);
    EXPECT_EQ(config["head_dim"], 128);
    EXPECT_EQ(config["rotary_dim"], 64);
    EXPECT_EQ(config["num_local_experts"], 32);
    EXPECT_EQ(config["num_experts_per_tok"], 4);
    EXPECT_EQ(config["intermediate_size"], 512);
    EXPECT_EQ(config["vocab_size"], 8192);
}

}  // namespace
}  // namespace fourbit::cli_test
