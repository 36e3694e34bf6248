// Checkpoint directories: finding the safetensors files that make up a model, checking them
// against the Hugging Face shard index, and writing sharded checkpoints with such an index.
#include "formats/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/progress.h"

namespace fourbit {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleFileName = "model.safetensors";

std::string read_text_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open {}", path.string());
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) fail("cannot read {}", path.string());
    return text.str();
}

struct IndexedShard {
    std::string file_name;
    std::vector<std::string> tensors;  // the tensors the index places in it, sorted
};

// Reads `weight_map` (tensor -> shard file name) and groups it by shard, in order of first use.
std::vector<IndexedShard> read_index(const fs::path& index_path) {
    std::string where = index_path.string();
    json index;
    try {
        index = json::parse(read_text_file(index_path));
    } catch (const json::exception& e) {
        fail("{}: not valid JSON: {}", where, e.what());
    }
    if (!index.is_object()) fail("{}: not a JSON object", where);
    if (index.contains("metadata") && !index["metadata"].is_object()) {
        fail("{}: \"metadata\" is not an object", where);
    }
    auto weight_map = index.find("weight_map");
    if (weight_map == index.end() || !weight_map->is_object()) {
        fail("{}: \"weight_map\" is missing or not an object", where);
    }

    std::vector<IndexedShard> shards;
    std::map<std::string, size_t> shard_of_name;
    for (auto it = weight_map->begin(); it != weight_map->end(); ++it) {
        if (!it.value().is_string()) {
            fail("{}: weight_map entry of tensor '{}' is not a string", where, it.key());
        }
        const auto& file_name = it.value().get_ref<const std::string&>();
        // Shards live beside the index; a path that leaves the directory is a corrupt or
        // hostile index, not a layout any writer produces.
        if (file_name.empty() || file_name == "." || file_name == ".." ||
            fs::path(file_name).filename() != file_name) {
            fail("{}: tensor '{}' is mapped to '{}', which is not a file name in the directory",
                 where, it.key(), file_name);
        }
        auto [slot, inserted] = shard_of_name.try_emplace(file_name, shards.size());
        if (inserted) shards.push_back({file_name, {}});
        shards[slot->second].tensors.push_back(it.key());
    }
    return shards;
}

std::vector<std::shared_ptr<const SafetensorsFile>> open_indexed(const fs::path& dir,
                                                                 const fs::path& index_path) {
    std::vector<std::shared_ptr<const SafetensorsFile>> files;
    for (const auto& shard : read_index(index_path)) {
        fs::path shard_path = dir / shard.file_name;
        std::error_code error;
        if (!fs::is_regular_file(shard_path, error)) {
            fail("{}: shard {} (holding tensor '{}') is missing", index_path.string(),
                 shard_path.string(), shard.tensors.front());
        }
        auto file = SafetensorsFile::open(shard_path.string());
        for (const auto& name : shard.tensors) {
            if (file->find(name) == nullptr) {
                fail("{}: tensor '{}' is listed in shard {}, which does not contain it",
                     index_path.string(), name, shard_path.string());
            }
        }
        files.push_back(std::move(file));
    }
    return files;
}

std::vector<std::string> list_safetensors(const fs::path& dir) {
    std::vector<std::string> paths;
    std::error_code error;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
        if (it->path().extension() == ".safetensors" && it->is_regular_file(error)) {
            paths.push_back(it->path().string());
        }
    }
    if (error) fail("cannot list {}: {}", dir.string(), error.message());
    std::sort(paths.begin(), paths.end());
    return paths;
}

// Small JSON files (the index) get the same write-then-rename treatment as shards.
void write_text_file(const fs::path& path, const std::string& text) {
    fs::path temp_path = path.string() + ".tmp";
    {
        std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) {
            std::error_code ignored;
            fs::remove(temp_path, ignored);
            fail("cannot write {}", temp_path.string());
        }
    }
    std::error_code error;
    fs::rename(temp_path, path, error);
    if (error)
        fail("cannot rename {} to {}: {}", temp_path.string(), path.string(), error.message());
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
    std::error_code error;
    if (!fs::is_directory(dir, error)) {
        fail("checkpoint directory {} does not exist or is not a directory", dir);
    }

    Checkpoint checkpoint;
    checkpoint.dir_ = dir;
    fs::path index_path = fs::path(dir) / kIndexName;
    fs::path single_path = fs::path(dir) / kSingleFileName;
    if (fs::exists(index_path, error)) {
        checkpoint.files_ = open_indexed(dir, index_path);
    } else if (fs::exists(single_path, error)) {
        checkpoint.files_.push_back(SafetensorsFile::open(single_path.string()));
    } else {
        std::vector<std::string> paths = list_safetensors(dir);
        if (paths.empty()) fail("no safetensors files in {}", dir);
        for (const auto& path : paths) checkpoint.files_.push_back(SafetensorsFile::open(path));
    }

    // NOTE: Location points into the SafetensorsFile objects, which files_ keeps alive and
    // which moving the Checkpoint does not relocate.
    for (const auto& file : checkpoint.files_) {
        for (const auto& entry : file->entries()) {
            auto [it, inserted] =
                checkpoint.tensors_.try_emplace(entry.name, Location{file.get(), &entry});
            if (!inserted) {
                fail("tensor '{}' is in both {} and {}", entry.name, it->second.file->path(),
                     file->path());
            }
        }
    }
    return checkpoint;
}

bool Checkpoint::contains(std::string_view name) const { return tensors_.contains(name); }

const SafetensorsEntry& Checkpoint::entry(std::string_view name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail("tensor '{}' is not in checkpoint {}", name, dir_);
    return *it->second.entry;
}

Tensor Checkpoint::tensor(std::string_view name) const {
    const SafetensorsEntry& found = entry(name);
    return tensors_.find(name)->second.file->tensor(found.name);
}

const std::string& Checkpoint::file_of(std::string_view name) const {
    entry(name);  // throws the usual Error when absent
    return tensors_.find(name)->second.file->path();
}

std::vector<std::string> Checkpoint::tensor_names() const {
    std::vector<std::string> names;
    names.reserve(tensors_.size());
    for (const auto& [name, location] : tensors_) names.push_back(name);
    return names;
}

std::vector<std::vector<std::string>> Checkpoint::tensors_by_file() const {
    std::vector<std::vector<std::string>> files;
    for (const auto& file : files_) {
        files.emplace_back();
        for (const auto& entry : file->entries()) files.back().push_back(entry.name);
    }
    return files;
}

uint64_t Checkpoint::total_bytes() const {
    uint64_t total = 0;
    for (const auto& [name, location] : tensors_) {
        total += location.entry->end_bytes - location.entry->begin_bytes;
    }
    return total;
}

void write_sharded_checkpoint(const std::string& dir, const std::vector<TensorPlan>& plan,
                              const TensorFiller& fill, uint64_t max_shard_bytes) {
    // Sizes and names are checked before any file is written, so bad plans leave no debris.
    std::vector<uint64_t> sizes;
    for (const auto& tensor : plan) sizes.push_back(planned_size_bytes(tensor));

    // Greedy in plan order: a shard closes when the next tensor would push it over the limit,
    // so a tensor larger than the limit ends up alone. An empty plan still gets one shard, so
    // the result opens as a checkpoint.
    std::vector<std::vector<TensorPlan>> shards(1);
    uint64_t shard_bytes = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
        if (!shards.back().empty() && shard_bytes + sizes[i] > max_shard_bytes) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shards.back().push_back(plan[i]);
        shard_bytes += sizes[i];
    }
    write_checkpoint_shards(dir, shards, fill);
}

void write_checkpoint_shards(const std::string& dir,
                             const std::vector<std::vector<TensorPlan>>& planned_shards,
                             const TensorFiller& fill) {
    std::vector<std::vector<TensorPlan>> shards = planned_shards;
    if (shards.empty()) shards.emplace_back();
    // Sizes and names are checked before any file is written, so bad plans leave no debris.
    std::set<std::string_view> names;
    uint64_t total_bytes = 0;
    for (const auto& shard : shards) {
        for (const auto& tensor : shard) {
            if (!names.insert(tensor.name).second) {
                fail("tensor '{}' is planned twice", tensor.name);
            }
            if (__builtin_add_overflow(total_bytes, planned_size_bytes(tensor), &total_bytes)) {
                fail("checkpoint {} holds more than 2^64 bytes", dir);
            }
        }
    }

    std::error_code error;
    fs::create_directories(dir, error);
    if (error) fail("cannot create checkpoint directory {}: {}", dir, error.message());

    Progress progress("writing " + dir, total_bytes, "B");
    auto fill_and_count = [&](const TensorPlan& tensor, std::span<uint8_t> out) {
        fill(tensor, out);
        progress.advance(out.size());
    };
    // transformers refuses to load safetensors whose metadata lacks a known "format".
    const std::map<std::string, std::string> shard_metadata = {{"format", "pt"}};
    json weight_map = json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
        std::string file_name =
            fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
        write_safetensors((fs::path(dir) / file_name).string(), shards[i], fill_and_count,
                          shard_metadata);
        for (const auto& tensor : shards[i]) weight_map[tensor.name] = file_name;
    }
    progress.finish();

    // Written last: an index only ever names shards that are complete on disk.
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_text_file(fs::path(dir) / kIndexName, index.dump(2) + "\n");
}

}  // namespace fourbit
