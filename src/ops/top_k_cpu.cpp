#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops/top_k.h"

namespace fourbit::cpu {

void top_k_rows(const Tensor& x, int64_t k, Tensor& values, Tensor& ids) {
    const int64_t n = x.dim(1);
    std::vector<int32_t> order(n);
    for (int64_t r = 0; r < x.dim(0); ++r) {
        const float* row = x.data<float>() + r * n;
        float* row_values = values.data<float>() + r * k;
        int32_t* row_ids = ids.data<int32_t>() + r * k;
        if (!std::all_of(row, row + n, [](float v) { return std::isfinite(v); })) {
            std::fill(row_values, row_values + k, 0.0f);
            std::fill(row_ids, row_ids + k, -1);
            continue;
        }
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
            return row[a] > row[b] || (row[a] == row[b] && a < b);
        });
        for (int64_t j = 0; j < k; ++j) {
            row_values[j] = row[order[j]];
            row_ids[j] = order[j];
        }
    }
}

}  // namespace fourbit::cpu
