// Pseudo-random tensor contents for synthetic weights (benchmarks of shapes too big to write to
// disk): element i is a function of (seed, i) only, so a seed gives the same values on every
// device and in any order of work.
//   fill_uniform  f32 or bf16 elements uniform in [low, high]
//   fill_bytes    every byte uniform in [low, high] (NVFP4 codes and scales, whatever dtype
//                 holds them)
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace fourbit {

void fill_uniform(Tensor& tensor, float low, float high, uint64_t seed);
void fill_bytes(Tensor& tensor, uint8_t low, uint8_t high, uint64_t seed);

// The hash both devices use: splitmix64's finaliser of seed and index.
#if defined(__CUDACC__)
__host__ __device__
#endif
inline uint64_t random_fill_hash(uint64_t seed, uint64_t index) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

namespace cpu {
void fill_uniform(Tensor& tensor, float low, float high, uint64_t seed);
void fill_bytes(Tensor& tensor, uint8_t low, uint8_t high, uint64_t seed);
}  // namespace cpu
namespace cuda {
void fill_uniform(Tensor& tensor, float low, float high, uint64_t seed);
void fill_bytes(Tensor& tensor, uint8_t low, uint8_t high, uint64_t seed);
}  // namespace cuda

}  // namespace fourbit
