// The machine's sustained read bandwidth: every thread streaming its own part of a buffer far
// larger than the caches, the ceiling for memory-bound kernels (decode, GEMV).
#pragma once

namespace fourbit::bench {

// Bytes per second, the best of a few passes over a 1 GiB buffer.
double measure_read_bandwidth();

}  // namespace fourbit::bench
