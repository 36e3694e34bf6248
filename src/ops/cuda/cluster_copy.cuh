// Bulk copies global -> shared memory that land in every CTA of a thread block cluster at once
// (sm_90 TMA multicast), and the cluster barrier and mbarrier they need. One read of L2 serves
// the cluster: a decode GEMV stages the same activation rows in each of its CTAs (at 8 tokens
// M2's o_proj's 192 CTAs read 19 MB of rows from L2 for 11 MB of weights).
#pragma once

#include <cstdint>

#include "ops/cuda/async_copy.cuh"

namespace fourbit::cuda {

// This CTA's rank in its cluster.
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return rank;
}

// The cluster barrier, in two halves so that work goes on between them; every thread of every
// CTA of the cluster takes part, arrivals and waits alternating.
__device__ __forceinline__ void cluster_arrive() {
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
    asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// A CTA's barrier for its copies (one a CTA: a kernel that calls this has one in shared memory).
__device__ __forceinline__ uint64_t* cta_copy_barrier() {
    __shared__ uint64_t barrier;
    return &barrier;
}

// By one thread: `barrier` set for one arrival, its initialisation visible to the cluster's
// copies once the cluster barrier that follows has been passed.
__device__ __forceinline__ void init_copy_barrier(uint64_t* barrier) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(barrier))
                 : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// By the thread that initialised it: the one arrival, announcing `bytes` to land. Copies that
// land before it count down from zero (the phase ends only when both are done).
__device__ __forceinline__ void expect_bytes(uint64_t* barrier, unsigned bytes) {
    asm volatile(
        "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(barrier)),
        "r"(bytes)
        : "memory");
}

// Until the barrier's first phase is over: every announced byte has landed in this CTA.
__device__ __forceinline__ void wait_first_phase(uint64_t* barrier) {
    asm volatile(
        "{ .reg .pred done;\n"
        "waiting: mbarrier.try_wait.parity.shared::cta.b64 done, [%0], 0;\n"
        "@!done bra waiting; }" ::"r"(shared_address(barrier))
        : "memory");
}

// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory to the same
// shared-memory offset in each CTA of the cluster in `ctas` (a bit a rank), each counting them
// on its own barrier at `barrier`'s offset. Hopper only: ptxas warns that multicast is expected
// to be much slower on sm_120/121, so the kernels that call this are launched on sm_90 alone
// (linear_in_clusters), and other targets compile a trap.
__device__ __forceinline__ void copy_to_cluster(void* shared, const void* global, unsigned bytes,
                                                uint64_t* barrier, uint16_t ctas) {
#if __CUDA_ARCH__ == 900
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster "
        "[%0], [%1], %2, [%3], %4;" ::"r"(shared_address(shared)),
        "l"(global), "r"(bytes), "r"(shared_address(barrier)), "h"(ctas)
        : "memory");
#else
    __trap();
#endif
}

}  // namespace fourbit::cuda
