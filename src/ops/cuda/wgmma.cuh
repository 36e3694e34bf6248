// Hopper's asynchronous warpgroup tensor-core products (wgmma, sm_90a), as the kernels here use
// them: operands in shared memory as PTX's canonical layouts without swizzle (8 x 16-byte core
// matrices, each 128 contiguous bytes), or A from registers in the mma.sync A-fragment layout
// (warp w of the warpgroup gives rows 16w .. 16w + 15), accumulators coming back in the mma.sync
// D layout per 8 columns (thread 4g + t: rows g and g + 8, columns 8j + 2t and + 1 in d[4j ..
// 4j + 3]).
//
// FOURBIT_WGMMA is defined where a kernel may use wgmma (sm_90a device code); the host launches
// such kernels only where runs_wgmma() says so.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/async_copy.cuh"
#include "ops/cuda/device_attribute.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FOURBIT_WGMMA 1
#endif

namespace fourbit::cuda::wgmma {

// Whether the current device runs the wgmma kernels: compute capability 9.0 (sm_90a).
inline bool runs_wgmma() {
    return current_device_attribute(cudaDevAttrComputeCapabilityMajor) == 9 &&
           current_device_attribute(cudaDevAttrComputeCapabilityMinor) == 0;
}

#ifdef FOURBIT_WGMMA

// The shared-memory descriptor of an operand without swizzle: `leading` bytes between core
// matrices adjacent in k, `stride` bytes between those adjacent in m or n (PTX ISA, "Matrix
// Descriptor"; the same meaning for K-major and MN-major operands without swizzle).
__device__ __forceinline__ uint64_t descriptor(const void* p, uint32_t leading, uint32_t stride) {
    const uint32_t address = shared_address(p);
    return static_cast<uint64_t>((address & 0x3ffff) >> 4) |
           (static_cast<uint64_t>(leading >> 4) << 16) | (static_cast<uint64_t>(stride >> 4) << 32);
}

// A descriptor's operand `bytes` further on (a multiple of 16): its start address field counts
// 16-byte units and holds any shared-memory address, so the add carries into no other field.
__device__ __forceinline__ uint64_t advance(uint64_t descriptor, uint32_t bytes) {
    return descriptor + (bytes >> 4);
}

// What this thread wrote or cp.async'd into shared memory (and waited for) becomes visible to the
// tensor cores, which read through the async proxy.
__device__ __forceinline__ void fence_async_proxy() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Orders this warpgroup's register writes (accumulators, A fragments) before the wgmma after it.
__device__ __forceinline__ void fence_operands() {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void commit_group() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void wait_group() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

// Keeps the compiler from moving accumulator reads above the last wait.
template <int kCount>
__device__ __forceinline__ void pin(float (&d)[kCount]) {
#pragma unroll
    for (int i = 0; i < kCount; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// d (+)= A B: m64 n64 k16, bf16 in, f32 out, A and B K-major in shared memory. kAccumulate
// false overwrites d (so that nothing but wgmma need define it).
template <bool kAccumulate>
__device__ __forceinline__ void mma_64x64(float (&d)[32], uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, accumulate, 1, 1, 0, 0;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(a), "l"(b), "n"(kAccumulate ? 1 : 0));
}

// d += A B: m64 n128 k16, bf16 in, f32 out, A from registers, B MN-major (n contiguous) in
// shared memory.
__device__ __forceinline__ void mma_64x128_mn(float (&d)[64], const uint32_t (&a)[4], uint64_t b) {
    asm volatile(
        "{\n.reg .pred accumulate;\nsetp.ne.b32 accumulate, 1, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, accumulate, 1, 1, 1;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
          "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
          "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

#endif  // FOURBIT_WGMMA

}  // namespace fourbit::cuda::wgmma
