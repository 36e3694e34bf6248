// Checkpoint directories: the three layouts (index, single file, loose files), the sharded
// writer and its index, and the errors for inconsistent directories.
#include "formats/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"
#include "util/error.h"

namespace fourbit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using CheckpointTest = test_support::TempDirTest;

// Every byte of tensor `name` is derived from the name and the position.
uint8_t pattern_byte(const std::string& name, size_t i) {
    return static_cast<uint8_t>(std::hash<std::string>{}(name) + i * 13);
}

void fill_pattern(const TensorPlan& plan, std::span<uint8_t> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = pattern_byte(plan.name, i);
}

bool has_pattern(const Tensor& tensor, const std::string& name) {
    const auto* bytes = static_cast<const uint8_t*>(tensor.raw());
    for (size_t i = 0; i < tensor.size_bytes(); ++i) {
        if (bytes[i] != pattern_byte(name, i)) return false;
    }
    return true;
}

// A safetensors file holding one U8 tensor of 4 bytes per name.
void write_file(const std::string& path, const std::vector<std::string>& names) {
    std::vector<TensorPlan> plan;
    for (const auto& name : names) plan.push_back({name, DType::u8, {4}});
    write_safetensors(path, plan, fill_pattern);
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// The message of the Error that opening `dir` throws; fails the test when nothing is thrown.
std::string open_error(const std::string& dir) {
    try {
        Checkpoint::open(dir);
    } catch (const Error& error) {
        return error.what();
    }
    ADD_FAILURE() << "opening " << dir << " did not throw";
    return "";
}

void expect_mentions(const std::string& message, std::initializer_list<std::string> facts) {
    for (const auto& fact : facts) {
        EXPECT_NE(message.find(fact), std::string::npos)
            << "message: " << message << "\nshould mention: " << fact;
    }
}

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.ends_with(suffix);
}

TEST_F(CheckpointTest, OpensSingleModelFileAndIgnoresOthers) {
    write_file(path("model.safetensors"), {"b", "a"});
    write_file(path("stray.safetensors"), {"a"});  // would clash, but model.safetensors wins
    Checkpoint checkpoint = Checkpoint::open(dir());
    EXPECT_EQ(checkpoint.tensor_names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(checkpoint.contains("a"));
    EXPECT_FALSE(checkpoint.contains("c"));
    EXPECT_TRUE(ends_with(checkpoint.file_of("a"), "model.safetensors"));
    EXPECT_EQ(checkpoint.total_bytes(), 8u);
    EXPECT_TRUE(has_pattern(checkpoint.tensor("b"), "b"));
    EXPECT_EQ(checkpoint.entry("a").shape, (Shape{4}));
}

TEST_F(CheckpointTest, OpensEverySafetensorsFileWithoutIndex) {
    write_file(path("part-b.safetensors"), {"y"});
    write_file(path("part-a.safetensors"), {"x", "z"});
    write_text(path("README.md"), "not a tensor file");
    Checkpoint checkpoint = Checkpoint::open(dir());
    EXPECT_EQ(checkpoint.tensor_names(), (std::vector<std::string>{"x", "y", "z"}));
    EXPECT_TRUE(ends_with(checkpoint.file_of("y"), "part-b.safetensors"));
    EXPECT_TRUE(ends_with(checkpoint.file_of("z"), "part-a.safetensors"));
    EXPECT_TRUE(has_pattern(checkpoint.tensor("z"), "z"));
}

TEST_F(CheckpointTest, ShardedWriterSplitsInPlanOrderAndIndexes) {
    // Limit 64 bytes: 40 | 40 | 100 (over the limit, alone) | 8 + 8.
    std::vector<TensorPlan> plan = {
        {"layers.0.w", DType::f32, {10}},    {"layers.0.b", DType::bf16, {20}},
        {"embed", DType::u8, {10, 10}},      {"layers.1.w", DType::f8_e4m3, {8}},
        {"layers.1.scale", DType::i64, {1}},
    };
    std::vector<std::string> filled;
    write_sharded_checkpoint(
        path("out"), plan,
        [&](const TensorPlan& tensor, std::span<uint8_t> out) {
            filled.push_back(tensor.name);
            fill_pattern(tensor, out);
        },
        64);

    // Shards take the plan in order; inside the last shard the i64 goes before the f8 so
    // that it is aligned.
    std::vector<std::string> expected_order = {"layers.0.w", "layers.0.b", "embed",
                                               "layers.1.scale", "layers.1.w"};
    EXPECT_EQ(filled, expected_order);

    const std::vector<std::string> shard_names = {
        "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
        "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
    std::vector<std::string> files_in_dir;
    for (const auto& item : fs::directory_iterator(path("out"))) {
        files_in_dir.push_back(item.path().filename().string());
    }
    std::sort(files_in_dir.begin(), files_in_dir.end());
    std::vector<std::string> expected_files = shard_names;
    expected_files.push_back("model.safetensors.index.json");
    EXPECT_EQ(files_in_dir, expected_files) << "no .tmp files left behind";

    std::string index_text = read_text(path("out/model.safetensors.index.json"));
    json index = json::parse(index_text);
    EXPECT_EQ(index["metadata"]["total_size"], 196);
    json expected_map = {{"layers.0.w", shard_names[0]},
                         {"layers.0.b", shard_names[1]},
                         {"embed", shard_names[2]},
                         {"layers.1.w", shard_names[3]},
                         {"layers.1.scale", shard_names[3]}};
    EXPECT_EQ(index["weight_map"], expected_map);
    EXPECT_NE(index_text.find("\n  \"metadata\""), std::string::npos) << "pretty-printed";
    EXPECT_LT(index_text.find("\"embed\""), index_text.find("\"layers.0.b\"")) << "keys sorted";

    auto shard = SafetensorsFile::open(path("out/" + shard_names[3]));
    EXPECT_EQ(shard->entries().size(), 2u);
    EXPECT_EQ(shard->metadata().at("format"), "pt");

    Checkpoint checkpoint = Checkpoint::open(path("out"));
    EXPECT_EQ(checkpoint.tensor_names().size(), plan.size());
    EXPECT_EQ(checkpoint.total_bytes(), 196u);
    for (const auto& tensor : plan) {
        Tensor read = checkpoint.tensor(tensor.name);
        EXPECT_EQ(read.dtype(), tensor.dtype);
        EXPECT_EQ(read.shape(), tensor.shape);
        EXPECT_TRUE(has_pattern(read, tensor.name)) << tensor.name;
        EXPECT_TRUE(ends_with(checkpoint.file_of(tensor.name),
                              index["weight_map"][tensor.name].get<std::string>()));
    }
}

TEST_F(CheckpointTest, SingleShardIsStillIndexed) {
    std::vector<TensorPlan> plan = {{"a", DType::f32, {3}}, {"b", DType::f32, {0}}};
    write_sharded_checkpoint(path("one"), plan, fill_pattern, uint64_t{1} << 30);
    EXPECT_TRUE(fs::exists(path("one/model-00001-of-00001.safetensors")));
    json index = json::parse(read_text(path("one/model.safetensors.index.json")));
    EXPECT_EQ(index["metadata"]["total_size"], 12);
    EXPECT_EQ(index["weight_map"]["b"], "model-00001-of-00001.safetensors");
    Checkpoint checkpoint = Checkpoint::open(path("one"));
    EXPECT_EQ(checkpoint.tensor_names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(checkpoint.tensor("b").numel(), 0);
}

TEST_F(CheckpointTest, ShardFilledExactlyToLimitTakesNoMore) {
    std::vector<TensorPlan> plan;
    for (const char* name : {"a", "b", "c", "d", "e"}) plan.push_back({name, DType::f32, {4}});
    write_sharded_checkpoint(path("exact"), plan, fill_pattern, 32);  // two 16-byte tensors fit
    json index = json::parse(read_text(path("exact/model.safetensors.index.json")));
    EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["b"], "model-00001-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["c"], "model-00002-of-00003.safetensors");
    EXPECT_EQ(index["weight_map"]["e"], "model-00003-of-00003.safetensors");
    EXPECT_EQ(Checkpoint::open(path("exact")).total_bytes(), 80u);
}

TEST_F(CheckpointTest, ShardedWriterRejectsDuplicateNamesBeforeWriting) {
    std::vector<TensorPlan> plan = {{"w", DType::u8, {4}}, {"w", DType::u8, {4}}};
    try {
        write_sharded_checkpoint(path("dup"), plan, fill_pattern, 4);
        FAIL() << "no Error";
    } catch (const Error& error) {
        expect_mentions(error.what(), {"'w'", "twice"});
    }
    EXPECT_FALSE(fs::exists(path("dup")));
}

TEST_F(CheckpointTest, AcceptsShardTensorsMissingFromIndex) {
    write_file(path("shard-1.safetensors"), {"listed", "unlisted"});
    write_text(path("model.safetensors.index.json"),
               R"({"metadata": {}, "weight_map": {"listed": "shard-1.safetensors"}})");
    Checkpoint checkpoint = Checkpoint::open(dir());
    EXPECT_TRUE(checkpoint.contains("unlisted"));
    EXPECT_TRUE(has_pattern(checkpoint.tensor("unlisted"), "unlisted"));
}

TEST_F(CheckpointTest, MissingShardIsRejected) {
    write_file(path("model-00001-of-00002.safetensors"), {"a"});
    write_text(path("model.safetensors.index.json"),
               R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                  "b.weight": "model-00002-of-00002.safetensors"}})");
    expect_mentions(open_error(dir()), {"model-00002-of-00002.safetensors", "'b.weight'"});
}

TEST_F(CheckpointTest, TensorListedInIndexButAbsentFromShardIsRejected) {
    write_file(path("shard.safetensors"), {"present"});
    write_text(path("model.safetensors.index.json"),
               R"({"weight_map": {"present": "shard.safetensors",
                                  "ghost": "shard.safetensors"}})");
    expect_mentions(open_error(dir()), {"shard.safetensors", "'ghost'", "does not contain"});
}

TEST_F(CheckpointTest, MalformedIndexIsRejected) {
    write_file(path("shard.safetensors"), {"a"});
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"weight_map": {"a": "shard.safetensors")", "not valid JSON"},
        {R"({"metadata": {}})", "weight_map"},
        {R"({"weight_map": {"a": 1}})", "'a'"},
        {R"({"weight_map": {"a": "../shard.safetensors"}})", "../shard.safetensors"},
    };
    for (const auto& [text, fact] : cases) {
        write_text(path("model.safetensors.index.json"), text);
        SCOPED_TRACE(text);
        expect_mentions(open_error(dir()), {"model.safetensors.index.json", fact});
    }
}

TEST_F(CheckpointTest, DuplicateTensorAcrossFilesIsRejected) {
    // Created out of name order: files are read sorted, so the message lists them sorted.
    write_file(path("two.safetensors"), {"shared.weight"});
    write_file(path("one.safetensors"), {"a", "shared.weight"});
    std::string message = open_error(dir());
    expect_mentions(message, {"'shared.weight'", "one.safetensors", "two.safetensors"});
    EXPECT_LT(message.find("one.safetensors"), message.find("two.safetensors"));

    // The same through an index that lists the tensor once but finds it in two shards.
    write_text(path("model.safetensors.index.json"),
               R"({"weight_map": {"a": "one.safetensors",
                                  "shared.weight": "two.safetensors"}})");
    expect_mentions(open_error(dir()), {"'shared.weight'", "one.safetensors", "two.safetensors"});
}

TEST_F(CheckpointTest, LooseFilesAreReadInSortedOrder) {
    // The first clash found is between the first two files read; directory listing order
    // (hash order on ext4) would almost never give part-0 and part-1.
    for (int i = 7; i >= 0; --i) {
        write_file(path(fmt::format("part-{}.safetensors", i)), {"same", fmt::format("own{}", i)});
    }
    std::string message = open_error(dir());
    expect_mentions(message, {"part-0.safetensors and ", "part-1.safetensors"});
}

TEST_F(CheckpointTest, EmptyDirectoryIsRejected) {
    write_text(path("config.json"), "{}");
    EXPECT_EQ(open_error(dir()), "no safetensors files in " + dir());
}

TEST_F(CheckpointTest, MissingDirectoryIsRejected) {
    expect_mentions(open_error(path("nowhere")), {path("nowhere")});
    write_text(path("plain-file"), "x");
    expect_mentions(open_error(path("plain-file")), {path("plain-file")});
}

TEST_F(CheckpointTest, UnknownTensorThrowsNamingTensorAndCheckpoint) {
    write_file(path("model.safetensors"), {"a"});
    Checkpoint checkpoint = Checkpoint::open(dir());
    for (auto lookup : {+[](const Checkpoint& c) { c.entry("nope"); },
                        +[](const Checkpoint& c) { c.tensor("nope"); },
                        +[](const Checkpoint& c) { c.file_of("nope"); }}) {
        try {
            lookup(checkpoint);
            ADD_FAILURE() << "no Error";
        } catch (const Error& error) {
            expect_mentions(error.what(), {"'nope'", dir()});
        }
    }
}

TEST_F(CheckpointTest, TensorOutlivesCheckpoint) {
    write_file(path("model.safetensors"), {"kept"});
    Tensor kept;
    {
        Checkpoint checkpoint = Checkpoint::open(dir());
        kept = checkpoint.tensor("kept");
    }
    EXPECT_TRUE(has_pattern(kept, "kept"));
}

}  // namespace
}  // namespace fourbit
