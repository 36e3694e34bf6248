#include "ops/step_graph.h"

#include <cstdlib>
#include <cstring>
#include <map>

#include "ops/device_dispatch.h"

namespace fourbit {

struct StepGraphs::Graphs {
    std::map<std::string, std::shared_ptr<cuda::CapturedGraph>> by_key;
};

StepGraphs::StepGraphs() : graphs_(std::make_unique<Graphs>()) {}
StepGraphs::~StepGraphs() = default;

bool step_graphs_enabled() {
    const char* value = std::getenv("FOURBIT_CUDA_GRAPHS");
    return value == nullptr || std::strcmp(value, "0") != 0;
}

void StepGraphs::run(Device device, const std::string& key, const std::function<void()>& step) {
    if (device.is_host() || !step_graphs_enabled()) return step();
#ifdef FOURBIT_CUDA
    // A server's shapes come and go; a bounded cache keeps the graphs' memory bounded too.
    constexpr size_t kMaxGraphs = 256;
    auto found = graphs_->by_key.find(key);
    if (found == graphs_->by_key.end()) {
        if (graphs_->by_key.size() >= kMaxGraphs) graphs_->by_key.clear();
        found = graphs_->by_key.emplace(key, cuda::capture_graph(device.index, step)).first;
    }
    cuda::launch_graph(*found->second);
#else
    no_cuda_backend("StepGraphs::run", device);
#endif
}

void StepGraphs::clear() { graphs_->by_key.clear(); }

size_t StepGraphs::size() const { return graphs_->by_key.size(); }

}  // namespace fourbit
