// CUDA graphs of forward steps: a decode step of MiniMax-M2 is ~1,100 small kernels, and
// launching them one by one costs the host more time than the GPU spends running them. Here a
// step's kernels are recorded once per key and replayed as one graph after.
//
// The recorded callable must only queue work on the current stream (ops/cuda/stream.h): no
// cudaMalloc (Scratch's stream-ordered allocations are fine), no synchronous copy, no reading of
// results on the host; and everything that changes between replays must be read by the kernels
// from device memory at fixed addresses. The key names everything baked into the launches:
// shapes, buffers, launch configurations.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "tensor/device.h"

namespace fourbit {

class StepGraphs {
public:
    StepGraphs();
    ~StepGraphs();
    StepGraphs(const StepGraphs&) = delete;
    StepGraphs& operator=(const StepGraphs&) = delete;

    // Runs `step` on `device`: on the host (or a build without CUDA, or with the environment's
    // FOURBIT_CUDA_GRAPHS=0) it simply runs; on a CUDA device the first call for `key` records
    // it and each call launches the recorded graph. Returns once the work is queued.
    void run(Device device, const std::string& key, const std::function<void()>& step);
    // Forgets every graph (their buffers are gone).
    void clear();
    size_t size() const;

private:
    struct Graphs;
    std::unique_ptr<Graphs> graphs_;
};

// Whether graphs are used (FOURBIT_CUDA_GRAPHS, default on).
bool step_graphs_enabled();

namespace cuda {
struct CapturedGraph;  // cudaGraphExec_t and its stream
std::shared_ptr<CapturedGraph> capture_graph(int device_index, const std::function<void()>& step);
void launch_graph(const CapturedGraph& graph);
}  // namespace cuda

}  // namespace fourbit
