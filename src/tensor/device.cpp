#include "tensor/device.h"

namespace fourbit {

std::string device_text(Device device) {
    return device.is_host() ? std::string("host") : "cuda:" + std::to_string(device.index);
}

}  // namespace fourbit
