// Loads of weights, which a kernel reads exactly once per call: they bypass L1, which holds the
// activations every warp re-reads. Volatile so that the loads stay where they are written, ahead
// of the math on the previous chunk: without it the compiler sank each load to its use and every
// group paid a full memory latency in turn (measured in the NVFP4 GEMV: 0.6 us per group, 3x
// slower kernels; in the exact GEMV's lm_head at 8 tokens 1,349 -> 1,289 us, H200). (The
// .L2::evict_first form needs 32-byte vectors on sm_90; a cache-policy hint is a later step.)
#pragma once

#include <cuda_runtime.h>

namespace fourbit::cuda {

__device__ __forceinline__ uint4 load_streaming(const uint4* pointer) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(pointer));
    return v;
}

__device__ __forceinline__ uint2 load_streaming(const uint2* pointer) {
    uint2 v;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];"
                 : "=r"(v.x), "=r"(v.y)
                 : "l"(pointer));
    return v;
}

}  // namespace fourbit::cuda
