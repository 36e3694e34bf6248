#include <cmath>

#include "ops/argmax.h"

namespace fourbit::cpu {

void argmax_rows(const Tensor& x, Tensor& ids) {
    const int64_t n = x.dim(1);
    for (int64_t r = 0; r < x.dim(0); ++r) {
        const float* row = x.data<float>() + r * n;
        int32_t best = 0;
        bool finite = true;
        for (int64_t i = 0; i < n; ++i) {
            finite = finite && std::isfinite(row[i]);
            if (row[i] > row[best]) best = static_cast<int32_t>(i);
        }
        ids.data<int32_t>()[r] = finite ? best : -1;
    }
}

}  // namespace fourbit::cpu
