// Asynchronous copies global -> shared memory (cp.async, sm_80+): the data lands while the thread
// goes on (a tile's loads overlap the math on the previous one) and holds no registers meanwhile.
// Written once for every kernel that stages data this way.
#pragma once

namespace fourbit::cuda {

// A shared-memory pointer as the 32-bit shared-window address PTX's shared-memory operands take.
__device__ __forceinline__ unsigned shared_address(const void* pointer) {
    return static_cast<unsigned>(__cvta_generic_to_shared(pointer));
}

// 16 bytes, through L2 only (.cg: what a CTA stages it reads from shared memory, not from L1).
// !valid reads nothing and writes zeros: rows past a tile's end must not leave stale bits, which
// could be NaN, under a zero weight.
__device__ __forceinline__ void copy_async_16(void* shared, const void* global, bool valid = true) {
    const unsigned address = shared_address(shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global),
                 "r"(valid ? 16 : 0));
}

// 4 bytes (rows whose width is not a multiple of 16 bytes), zeros where !valid.
__device__ __forceinline__ void copy_async_4(void* shared, const void* global, bool valid) {
    const unsigned address = shared_address(shared);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(address), "l"(global),
                 "r"(valid ? 4 : 0));
}

// Closes this thread's group of copies issued since the last commit.
__device__ __forceinline__ void commit_async_copies() { asm volatile("cp.async.commit_group;\n" ::); }

// This thread's groups have landed but for the newest kPending (a __syncthreads then makes
// everyone's visible).
template <int kPending>
__device__ __forceinline__ void wait_async_copies() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Every copy of this thread has landed, committed or not.
__device__ __forceinline__ void wait_all_async_copies() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

}  // namespace fourbit::cuda
