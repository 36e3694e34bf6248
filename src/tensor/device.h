// Where a tensor's bytes live: host memory or one CUDA device. Plain data, no CUDA headers, so
// every layer can name a device whether or not the build has the CUDA backend.
#pragma once

#include <string>

namespace fourbit {

enum class DeviceKind { host, cuda };

struct Device {
    DeviceKind kind = DeviceKind::host;
    int index = 0;  // the CUDA device ordinal; 0 for the host

    static Device host() { return {}; }
    static Device cuda(int index = 0) { return {DeviceKind::cuda, index}; }
    bool is_host() const { return kind == DeviceKind::host; }
    bool is_cuda() const { return kind == DeviceKind::cuda; }
    bool operator==(const Device&) const = default;
};

// "host", "cuda:0"
std::string device_text(Device device);
// "cpu" or "host", "cuda" (= cuda:0), "cuda:N"; anything else is an Error naming the text.
Device parse_device(const std::string& text);

}  // namespace fourbit
