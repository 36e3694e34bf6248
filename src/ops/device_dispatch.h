// How the op front functions pick a device: every tensor argument must live on the same one,
// and that is where the op runs. A mix, or a device this build has no kernels for, is a named
// error, never a silent copy or fallback.
#pragma once

#include <initializer_list>
#include <vector>

#include "tensor/tensor.h"

namespace fourbit {

// The device of the defined tensors among `tensors` (host when none is defined).
Device op_device(const char* op, std::initializer_list<const Tensor*> tensors);
Device op_device(const char* op, const std::vector<const Tensor*>& tensors);

// For a CUDA tensor in a build without the CUDA backend.
[[noreturn]] void no_cuda_backend(const char* op, Device device);

}  // namespace fourbit
