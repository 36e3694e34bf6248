// Recording and launching CUDA graphs (ops/step_graph.h).
#include <cuda_runtime_api.h>

#include "ops/cuda/stream.h"
#include "ops/step_graph.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

struct CapturedGraph {
    int device = 0;
    cudaStream_t stream = nullptr;
    cudaGraphExec_t exec = nullptr;
    ~CapturedGraph() {
        // Destructors must not throw; a failure at exit (context gone) is ignored.
        if (exec != nullptr) cudaGraphExecDestroy(exec);
        if (stream != nullptr) cudaStreamDestroy(stream);
    }
};

std::shared_ptr<CapturedGraph> capture_graph(int device_index, const std::function<void()>& step) {
    DeviceScope scope(device_index);
    auto graph = std::make_shared<CapturedGraph>();
    graph->device = device_index;
    // A blocking stream: the legacy default stream (where copies run) waits for it.
    FOURBIT_CUDA_CHECK(cudaStreamCreate(&graph->stream));
    cudaGraph_t recorded = nullptr;
    {
        StreamScope on(graph->stream);
        FOURBIT_CUDA_CHECK(cudaStreamBeginCapture(graph->stream, cudaStreamCaptureModeThreadLocal));
        try {
            step();
        } catch (...) {
            // End the failed recording, and clear the error it leaves as the thread's last one
            // (a later launch check would report it again).
            cudaStreamEndCapture(graph->stream, &recorded);
            if (recorded != nullptr) cudaGraphDestroy(recorded);
            cudaGetLastError();
            throw;
        }
        FOURBIT_CUDA_CHECK(cudaStreamEndCapture(graph->stream, &recorded));
    }
    const cudaError_t status = cudaGraphInstantiate(&graph->exec, recorded, 0);
    cudaGraphDestroy(recorded);
    FOURBIT_CUDA_CHECK(status);
    return graph;
}

void launch_graph(const CapturedGraph& graph) {
    DeviceScope scope(graph.device);
    FOURBIT_CUDA_CHECK(cudaGraphLaunch(graph.exec, graph.stream));
}

}  // namespace fourbit::cuda
