// A read-only memory map of a whole file: the zero-copy backing of checkpoint tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace fourbit {

class MappedFile {
public:
    // Throws Error naming the path when the file cannot be opened or mapped.
    static std::shared_ptr<const MappedFile> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size_bytes() const { return size_bytes_; }
    const std::string& path() const { return path_; }

private:
    MappedFile(std::string path, const uint8_t* data, size_t size_bytes)
        : path_(std::move(path)), data_(data), size_bytes_(size_bytes) {}
    std::string path_;
    const uint8_t* data_;
    size_t size_bytes_;
};

}  // namespace fourbit
