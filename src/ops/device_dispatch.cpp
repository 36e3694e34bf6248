#include "ops/device_dispatch.h"

#include "util/error.h"

namespace fourbit {

namespace {

template <typename Tensors>
Device common_device(const char* op, const Tensors& tensors) {
    bool found = false;
    Device device;
    for (const Tensor* tensor : tensors) {
        if (!tensor->defined()) continue;
        if (!found) {
            device = tensor->device();
            found = true;
        } else if (tensor->device() != device) {
            fail("{}: tensors on {} and {}; an op's tensors must share one device", op,
                 device_text(device), device_text(tensor->device()));
        }
    }
    return device;
}

}  // namespace

Device op_device(const char* op, std::initializer_list<const Tensor*> tensors) {
    return common_device(op, tensors);
}

Device op_device(const char* op, const std::vector<const Tensor*>& tensors) {
    return common_device(op, tensors);
}

void no_cuda_backend(const char* op, Device device) {
    fail("{}: tensors on {} but this build has no CUDA backend", op, device_text(device));
}

}  // namespace fourbit
