// Device memory in a build without the CUDA backend: queries answer "none", everything else
// is a named error.
#include <cstring>

#include "tensor/cuda_memory.h"
#include "util/error.h"

namespace fourbit {

bool cuda_compiled() { return false; }

int cuda_device_count() { return 0; }

DeviceMemoryInfo cuda_memory_info(int index) {
    fail("cuda:{}: this build has no CUDA backend", index);
}

void cuda_synchronize(int index) { fail("cuda:{}: this build has no CUDA backend", index); }

std::shared_ptr<void> cuda_allocate(size_t bytes, int index) {
    fail("cannot allocate {} bytes on cuda:{}: this build has no CUDA backend "
         "(configure with -DFOURBIT_CUDA=ON)",
         bytes, index);
}

void cuda_zero(void*, size_t, int index) {
    fail("cuda:{}: this build has no CUDA backend", index);
}

void copy_bytes(void* destination, Device destination_device, const void* source,
                Device source_device, size_t bytes) {
    if (!destination_device.is_host() || !source_device.is_host()) {
        fail("copy from {} to {}: this build has no CUDA backend", device_text(source_device),
             device_text(destination_device));
    }
    if (bytes != 0) std::memcpy(destination, source, bytes);
}

}  // namespace fourbit
