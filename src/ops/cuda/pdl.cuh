// Programmatic dependent launch (sm_90): a kernel launched with the PDL attribute may start
// while the previous kernel on its stream still runs, once that kernel's CTAs have all called
// allow_dependents (or exited). It may read only data no earlier kernel writes (the weights)
// before wait_for_prerequisites, which returns once the previous grid has completed and its
// memory is visible. Without the attribute both are no-ops.
#pragma once

namespace fourbit::cuda {

__device__ __forceinline__ void wait_for_prerequisites() {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

// Lets the next PDL kernel on the stream start its own weight loads now. Safe at entry: its
// reads of anything we or our predecessors write come after its own wait, which waits for us.
__device__ __forceinline__ void allow_dependents() {
    asm volatile("griddepcontrol.launch_dependents;");
}

}  // namespace fourbit::cuda
