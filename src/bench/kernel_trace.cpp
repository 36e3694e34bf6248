#include "bench/kernel_trace.h"

#include <algorithm>
#include <map>

#include "util/error.h"

#ifdef FOURBIT_CUPTI
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#endif

namespace fourbit {

std::string short_kernel_name(const std::string& demangled) {
    std::string name = demangled;
    const std::string anonymous = "(anonymous namespace)::";
    for (size_t at; (at = name.find(anonymous)) != std::string::npos;) name.erase(at, anonymous.size());
    if (name.rfind("void ", 0) == 0) name.erase(0, 5);
    // Outside the template arguments: the namespaces end at the last "::", the parameter list
    // starts at the first '('.
    int depth = 0;
    size_t begin = 0, end = name.size();
    for (size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '<') {
            ++depth;
        } else if (name[i] == '>') {
            --depth;
        } else if (depth == 0 && name[i] == '(') {
            end = i;
            break;
        } else if (depth == 0 && name.compare(i, 2, "::") == 0) {
            begin = i + 2;
        }
    }
    return name.substr(begin, end - begin);
}

KernelTable kernel_table(const std::vector<KernelSpan>& spans, int64_t steps) {
    KernelTable table;
    if (spans.empty() || steps < 1) return table;
    std::map<std::string, TracedKernel> by_name;
    // Idle: the gaps before a span starts that no earlier span covers (overlaps count once).
    uint64_t covered_until = spans.front().start_ns, idle = 0;
    for (const KernelSpan& span : spans) {
        TracedKernel& kernel = by_name[span.name];
        kernel.name = span.name;
        kernel.calls_per_step += 1.0 / steps;
        kernel.ms_per_step += 1e-6 * static_cast<double>(span.end_ns - span.start_ns) / steps;
        if (span.start_ns > covered_until) idle += span.start_ns - covered_until;
        covered_until = std::max(covered_until, span.end_ns);
    }
    for (auto& [name, kernel] : by_name) table.kernels.push_back(kernel);
    std::sort(
        table.kernels.begin(), table.kernels.end(),
        [](const TracedKernel& a, const TracedKernel& b) { return a.ms_per_step > b.ms_per_step; });
    table.ms_per_step = 1e-6 * static_cast<double>(covered_until - spans.front().start_ns) / steps;
    table.idle_ms_per_step = 1e-6 * static_cast<double>(idle) / steps;
    return table;
}

#ifdef FOURBIT_CUPTI

namespace {

// Where the callbacks put what they read: the one trace recording now.
std::mutex g_mutex;
std::vector<KernelSpan> g_spans;

std::string demangled(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> text(
        abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
    return status == 0 && text ? std::string(text.get()) : std::string(mangled);
}

void check(CUptiResult result, const char* what) {
    if (result == CUPTI_SUCCESS) return;
    const char* text = nullptr;
    cuptiGetResultString(result, &text);
    fail("kernel trace: {}: {}", what, text != nullptr ? text : "unknown CUPTI error");
}

constexpr size_t kBufferBytes = size_t(8) << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
    *size = *buffer != nullptr ? kBufferBytes : 0;
    *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
    CUpti_Activity* record = nullptr;
    std::lock_guard lock(g_mutex);
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
        const auto* kernel = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        g_spans.push_back({short_kernel_name(demangled(kernel->name)) + " " +
                               std::to_string(kernel->gridX) + "x" + std::to_string(kernel->gridY) +
                               "x" + std::to_string(kernel->gridZ),
                           kernel->start, kernel->end});
    }
    std::free(buffer);
}

}  // namespace

KernelTrace::KernelTrace() {
    {
        std::lock_guard lock(g_mutex);
        g_spans.clear();
    }
    check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed),
          "registering the activity buffers");
    // CONCURRENT_KERNEL leaves kernels free to overlap as they would (KERNEL serialises them).
    check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enabling kernel records");
    recording_ = true;
}

KernelTrace::~KernelTrace() {
    if (recording_) cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
}

std::vector<KernelSpan> KernelTrace::stop() {
    if (cudaDeviceSynchronize() != cudaSuccess) fail("kernel trace: the device failed");
    check(cuptiActivityFlushAll(1), "flushing the records");
    check(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "disabling kernel records");
    recording_ = false;
    std::vector<KernelSpan> spans;
    {
        std::lock_guard lock(g_mutex);
        spans.swap(g_spans);
    }
    std::sort(spans.begin(), spans.end(),
              [](const KernelSpan& a, const KernelSpan& b) { return a.start_ns < b.start_ns; });
    return spans;
}

#else

KernelTrace::KernelTrace() {
    fail("kernel traces need CUPTI, which this build did not find (a CUDA toolkit's libcupti)");
}

KernelTrace::~KernelTrace() = default;

std::vector<KernelSpan> KernelTrace::stop() { return {}; }

#endif

}  // namespace fourbit
