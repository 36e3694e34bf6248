// A tensor: dtype, shape and a pointer into storage that it shares (an owned host buffer or a
// memory-mapped checkpoint). Copying a Tensor copies the handle, not the data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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
    // Borrows `data`; `owner` keeps it alive (e.g. the mapped file).
    static Tensor borrow(DType dtype, Shape shape, const void* data,
                         std::shared_ptr<const void> owner);

    // Rows [begin, begin + count) of the first axis, sharing storage.
    Tensor rows(int64_t begin, int64_t count) const;

    // False for a default-constructed Tensor (no shape, no storage).
    bool defined() const { return data_ != nullptr || owner_ != nullptr; }
    DType dtype() const { return dtype_; }
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
    std::shared_ptr<const void> owner_;
    void* data_ = nullptr;
};

}  // namespace fourbit
