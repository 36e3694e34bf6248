#include "tensor/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "tensor/cuda_memory.h"
#include "util/error.h"

namespace fourbit {

int64_t shape_numel(const Shape& shape) {
    int64_t numel = 1;
    for (int64_t extent : shape) numel *= extent;
    return numel;
}

std::string shape_text(const Shape& shape) {
    std::string text = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i > 0) text += ", ";
        text += std::to_string(shape[i]);
    }
    return text + "]";
}

size_t Tensor::size_bytes() const {
    if (!defined()) return 0;
    return static_cast<size_t>(numel()) * dtype_size_bytes(dtype_);
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
    for (int64_t extent : shape) {
        FOURBIT_ASSERT(extent >= 0, "negative extent in {}", shape_text(shape));
    }
    Tensor tensor;
    tensor.dtype_ = dtype;
    tensor.shape_ = std::move(shape);
    size_t bytes = static_cast<size_t>(tensor.numel()) * dtype_size_bytes(dtype);
    size_t rounded = (bytes + 63) / 64 * 64;
    void* memory = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (memory == nullptr) fail("out of memory allocating {} bytes", bytes);
    std::memset(memory, 0, rounded == 0 ? 64 : rounded);
    tensor.owner_ = std::shared_ptr<void>(memory, std::free);
    tensor.data_ = memory;
    return tensor;
}

Tensor Tensor::zeros(DType dtype, Shape shape, Device device) {
    if (device.is_host()) return zeros(dtype, std::move(shape));
    for (int64_t extent : shape) {
        FOURBIT_ASSERT(extent >= 0, "negative extent in {}", shape_text(shape));
    }
    Tensor tensor;
    tensor.dtype_ = dtype;
    tensor.shape_ = std::move(shape);
    tensor.device_ = device;
    const size_t bytes = static_cast<size_t>(tensor.numel()) * dtype_size_bytes(dtype);
    std::shared_ptr<void> memory = cuda_allocate(bytes, device.index);
    cuda_zero(memory.get(), bytes, device.index);
    tensor.data_ = memory.get();
    tensor.owner_ = std::move(memory);
    return tensor;
}

Tensor Tensor::to(Device device) const {
    FOURBIT_ASSERT(defined(), "to({}) of an undefined tensor", device_text(device));
    Tensor copy;
    copy.dtype_ = dtype_;
    copy.shape_ = shape_;
    copy.device_ = device;
    const size_t bytes = size_bytes();
    std::shared_ptr<void> memory;
    if (device.is_host()) {
        copy = zeros(dtype_, shape_);
    } else {
        memory = cuda_allocate(bytes, device.index);
        copy.data_ = memory.get();
        copy.owner_ = std::move(memory);
    }
    copy_bytes(copy.data_, device, data_, device_, bytes);
    return copy;
}

void Tensor::copy_from(const Tensor& source) {
    FOURBIT_ASSERT(source.dtype_ == dtype_ && source.shape_ == shape_,
                   "copy_from: {} {} into {} {}", dtype_name(source.dtype_),
                   shape_text(source.shape_), dtype_name(dtype_), shape_text(shape_));
    copy_bytes(data_, device_, source.data_, source.device_, size_bytes());
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
    FOURBIT_ASSERT(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= shape_[0],
                   "rows [{}, {}) of {}", begin, begin + count, shape_text(shape_));
    Tensor view = *this;
    view.shape_[0] = count;
    size_t row_bytes = static_cast<size_t>(shape_numel(shape_) / std::max<int64_t>(shape_[0], 1)) *
                       dtype_size_bytes(dtype_);
    view.data_ = static_cast<uint8_t*>(data_) + begin * row_bytes;
    return view;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data,
                      std::shared_ptr<const void> owner) {
    Tensor tensor;
    tensor.dtype_ = dtype;
    tensor.shape_ = std::move(shape);
    tensor.owner_ = std::move(owner);
    // Borrowed checkpoint data is read-only by contract; the const is dropped only to share
    // one handle type with owned buffers.
    tensor.data_ = const_cast<void*>(data);
    return tensor;
}

}  // namespace fourbit
