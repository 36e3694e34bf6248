#include "tensor/device.h"

#include <charconv>

#include "util/error.h"

namespace fourbit {

std::string device_text(Device device) {
    return device.is_host() ? std::string("host") : "cuda:" + std::to_string(device.index);
}

Device parse_device(const std::string& text) {
    if (text == "cpu" || text == "host") return Device::host();
    if (text == "cuda") return Device::cuda(0);
    if (text.rfind("cuda:", 0) == 0) {
        int index = -1;
        const char* begin = text.data() + 5;
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(begin, end, index);
        if (error == std::errc() && stop == end && begin != end && index >= 0) {
            return Device::cuda(index);
        }
    }
    fail("device '{}': expected cpu, cuda or cuda:N", text);
}

}  // namespace fourbit
