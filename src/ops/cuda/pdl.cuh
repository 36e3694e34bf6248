// Programmatic dependent launch (sm_90): a kernel launched with the PDL attribute may start
// while the previous kernel on its stream still runs, once that kernel's CTAs have all called
// allow_dependents (or exited). It may read only data no earlier kernel writes (the weights)
// before wait_for_prerequisites, which returns once the previous grid has completed and its
// memory is visible. Without the attribute both are no-ops.
//
// A decode step is a chain of short kernels; launched this way each one's launch and CTA
// start overlap its predecessor's tail instead of following its end. Every kernel launched so
// must wait before it reads earlier kernels' data and before any of its CTAs returns (a grid
// that ended before its predecessor would let the kernel after it through early).
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace fourbit::cuda {

__device__ __forceinline__ void wait_for_prerequisites() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

// Lets the next PDL kernel on the stream start its own weight loads now. Safe at entry: its
// reads of anything we or our predecessors write come after its own wait, which waits for us.
__device__ __forceinline__ void allow_dependents() {
    asm volatile("griddepcontrol.launch_dependents;");
}

// Launches `kernel` with programmatic dependent launch allowed (see above).
template <typename... Parameters, typename... Arguments>
inline cudaError_t launch_with_pdl(void (*kernel)(Parameters...), dim3 grid, dim3 block,
                                   size_t shared_bytes, cudaStream_t stream,
                                   Arguments&&... arguments) {
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream;
    cudaLaunchAttribute attribute;
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
    return cudaLaunchKernelEx(&config, kernel, std::forward<Arguments>(arguments)...);
}

}  // namespace fourbit::cuda
