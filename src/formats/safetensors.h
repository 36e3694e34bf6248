// The safetensors format: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the data. Reading maps the file and hands out
// zero-copy tensors after validating every field; writing streams tensors into place.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"
#include "util/mapped_file.h"

namespace fourbit {

struct SafetensorsEntry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin_bytes;  // offsets into the data section (after the header)
    uint64_t end_bytes;
};

class SafetensorsFile {
public:
    // Validates the header length, the JSON, every dtype name, shapes against byte ranges,
    // offsets inside the file and that no two tensors overlap. Throws Error naming the file
    // and the offending tensor or field.
    static std::shared_ptr<const SafetensorsFile> open(const std::string& path);

    const std::string& path() const { return file_->path(); }
    const std::vector<SafetensorsEntry>& entries() const { return entries_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const SafetensorsEntry* find(std::string_view name) const;
    // Zero-copy view; the tensor keeps the mapping alive. Throws Error if absent.
    Tensor tensor(std::string_view name) const;

private:
    std::shared_ptr<const MappedFile> file_;
    const uint8_t* data_section_ = nullptr;
    std::vector<SafetensorsEntry> entries_;  // in file order
    std::map<std::string, size_t, std::less<>> index_;
    std::map<std::string, std::string> metadata_;
};

// What a writer is told before any data is written: the header needs every shape up front.
struct TensorPlan {
    std::string name;
    DType dtype;
    Shape shape;
};

// Bytes of the planned tensor's data (numel * dtype size). Throws Error naming the tensor for a
// negative extent or a size that overflows.
uint64_t planned_size_bytes(const TensorPlan& plan);

// Fills `out` (exactly numel * dtype size bytes) with the data of the planned tensor.
using TensorFiller = std::function<void(const TensorPlan& plan, std::span<uint8_t> out)>;

// Writes one safetensors file, each tensor produced by `fill` when its turn comes, so memory
// holds one tensor at a time. Data is laid out by element size, largest first (else in plan
// order), so that every tensor is aligned to its element size. Writes to a temporary name and
// renames, so a crash never leaves a truncated file under the final name.
void write_safetensors(const std::string& path, const std::vector<TensorPlan>& plan,
                       const TensorFiller& fill,
                       const std::map<std::string, std::string>& metadata = {});

// Convenience for tensors already in memory.
struct NamedTensor {
    std::string name;
    Tensor tensor;
};
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace fourbit
