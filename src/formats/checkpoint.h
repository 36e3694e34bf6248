// A checkpoint directory as a set of named tensors: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json`, or (without an index) every `*.safetensors` file in it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/safetensors.h"

namespace fourbit {

class Checkpoint {
public:
    // Throws Error for a missing directory, a malformed index, a shard named by the index that
    // is missing, a tensor the index places in a shard that lacks it, or a tensor in two files.
    static Checkpoint open(const std::string& dir);

    const std::string& dir() const { return dir_; }
    bool contains(std::string_view name) const;
    // Throws Error naming the tensor and the checkpoint when absent.
    const SafetensorsEntry& entry(std::string_view name) const;
    Tensor tensor(std::string_view name) const;
    // The file (path) that holds the tensor.
    const std::string& file_of(std::string_view name) const;
    std::vector<std::string> tensor_names() const;  // sorted
    // The tensors of each file, files in the order they were opened (index order or sorted
    // paths), tensors in the order of their data: the layout a converter keeps.
    std::vector<std::vector<std::string>> tensors_by_file() const;
    uint64_t total_bytes() const;

private:
    struct Location {
        const SafetensorsFile* file;
        const SafetensorsEntry* entry;
    };
    std::string dir_;
    std::vector<std::shared_ptr<const SafetensorsFile>> files_;
    std::map<std::string, Location, std::less<>> tensors_;
};

// Writes a checkpoint in shards of at most `max_shard_bytes` of tensor data
// (`model-00001-of-0000N.safetensors`) plus `model.safetensors.index.json` with
// `metadata.total_size` and `weight_map`, as Hugging Face does. A single shard is still indexed.
// Reports progress in bytes.
void write_sharded_checkpoint(const std::string& dir, const std::vector<TensorPlan>& plan,
                              const TensorFiller& fill, uint64_t max_shard_bytes);

// The same with the tensors already grouped into shards (e.g. a converted checkpoint keeping
// its source's shards). An empty list writes one empty shard.
void write_checkpoint_shards(const std::string& dir,
                             const std::vector<std::vector<TensorPlan>>& shards,
                             const TensorFiller& fill);

}  // namespace fourbit
