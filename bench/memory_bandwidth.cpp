#include "memory_bandwidth.h"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/cpu/kernels.h"

namespace fourbit::bench {

double measure_read_bandwidth() {
    const size_t n = size_t(1) << 28;  // 1 GiB of floats
    std::vector<float> buffer(n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) buffer[i] = static_cast<float>(i & 1023);
    double best = 0;
    for (int repeat = 0; repeat < 5; ++repeat) {
        double start = omp_get_wtime();
        double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
        for (int64_t block = 0; block < int64_t(n / 4096); ++block) {
            // a dot of the block with itself: one pass over memory, vectorised
            const float* p = buffer.data() + block * 4096;
            total += cpu::kernels().dot_f32(p, p, 4096);
        }
        double seconds = omp_get_wtime() - start;
        benchmark::DoNotOptimize(total);
        best = std::max(best, n * sizeof(float) / seconds);
    }
    return best;
}

}  // namespace fourbit::bench
