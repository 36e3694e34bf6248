// The kernels a stretch of CUDA work ran, each with its start and end on the device, from
// CUPTI's activity records: kernels launched by CUDA graphs too, which is how decode steps run
// (ncu times each kernel alone, and bench-model's --profile-ops waits after every op, so neither
// shows a step's kernels as they overlap and follow each other). For bench-model's
// --trace-kernels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fourbit {

struct KernelSpan {
    std::string name;  // the kernel's name, namespaces and parameters left out, then its grid
    uint64_t start_ns = 0;
    uint64_t end_ns = 0;
};

// Records every kernel launched from construction until stop(). One at a time per process (CUPTI
// keeps one set of activity callbacks). In a build without CUPTI, constructing one is a named error.
class KernelTrace {
public:
    KernelTrace();
    ~KernelTrace();
    KernelTrace(const KernelTrace&) = delete;
    KernelTrace& operator=(const KernelTrace&) = delete;

    // Waits for the device's work, then returns the recorded spans in order of their start.
    std::vector<KernelSpan> stop();

private:
    bool recording_ = false;
};

// "void ns::(anonymous namespace)::kernel<1, 4>(Params, int)" -> "kernel<1, 4>".
std::string short_kernel_name(const std::string& demangled);

// The spans of `steps` like steps (in start order, as stop() returns them), kernel by kernel.
struct TracedKernel {
    std::string name;
    double calls_per_step = 0;
    double ms_per_step = 0;
};
struct KernelTable {
    std::vector<TracedKernel> kernels;  // most time first
    double ms_per_step = 0;             // from the first start to the last end, over the steps
    double idle_ms_per_step = 0;        // the part of that in which no kernel ran
};
KernelTable kernel_table(const std::vector<KernelSpan>& spans, int64_t steps);

}  // namespace fourbit
