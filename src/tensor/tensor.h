// A tensor: dtype, shape, device and a pointer into storage that it shares (an owned host
// buffer, a memory-mapped checkpoint, or an owned CUDA allocation). Copying a Tensor copies the
// handle, not the data; `to` and `copy_from` move the bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"

namespace fourbit {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_text(const Shape& shape);  // "[2, 3]"

class Tensor {
public:
    Tensor() = default;
    // Zero-filled host memory, 64-byte aligned.
    static Tensor zeros(DType dtype, Shape shape);
    // Zero-filled memory on `device` (host: as above; CUDA: cudaMalloc, freed with the last
    // handle).
    static Tensor zeros(DType dtype, Shape shape, Device device);
    // Borrows `data`; `owner` keeps it alive (e.g. the mapped file).
    static Tensor borrow(DType dtype, Shape shape, const void* data,
                         std::shared_ptr<const void> owner);

    // A copy of this tensor's bytes on `device` (always a new allocation).
    Tensor to(Device device) const;
    // Overwrites this tensor's bytes with `source`'s, across devices; same dtype and shape.
    void copy_from(const Tensor& source);

    // Rows [begin, begin + count) of the first axis, sharing storage.
    Tensor rows(int64_t begin, int64_t count) const;

    // False for a default-constructed Tensor (no shape, no storage).
    bool defined() const { return data_ != nullptr || owner_ != nullptr; }
    DType dtype() const { return dtype_; }
    // NOTE: data() of a CUDA tensor is a device pointer; only device code may dereference it.
    Device device() const { return device_; }
    const Shape& shape() const { return shape_; }
    int rank() const { return static_cast<int>(shape_.size()); }
    int64_t dim(int axis) const { return shape_.at(axis < 0 ? axis + rank() : axis); }
    int64_t numel() const { return shape_numel(shape_); }
    size_t size_bytes() const;

    template <typename T>
    T* data() {
        return static_cast<T*>(data_);
    }
    template <typename T>
    const T* data() const {
        return static_cast<const T*>(data_);
    }
    const void* raw() const { return data_; }

private:
    DType dtype_ = DType::f32;
    Shape shape_;
    Device device_;
    std::shared_ptr<const void> owner_;
    void* data_ = nullptr;
};

}  // namespace fourbit
