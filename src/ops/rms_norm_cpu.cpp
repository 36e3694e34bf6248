#include <cmath>
#include <vector>

#include "ops/rms_norm.h"
#include "tensor/numeric.h"

namespace fourbit::cpu {

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
    const int64_t rows = x.dim(0), d = x.dim(1);
    std::vector<float> w(d);
    for (int64_t i = 0; i < d; ++i) {
        w[i] = weight.dtype() == DType::bf16 ? bf16_to_f32(weight.data<uint16_t>()[i])
                                             : weight.data<float>()[i];
    }
    const float* in = x.data<float>();
    const bool bf16 = y.dtype() == DType::bf16;
#pragma omp parallel for schedule(static) if (rows > 16)
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = in + r * d;
        // The mean of squares in double: d reaches 6144 for MiniMax-M2's q, and this is the
        // reference other devices are held to.
        double sum_squares = 0;
        for (int64_t i = 0; i < d; ++i) sum_squares += static_cast<double>(row[i]) * row[i];
        float scale = static_cast<float>(1.0 / std::sqrt(sum_squares / d + eps));
        // y may be x: each element is read before it is written.
        for (int64_t i = 0; i < d; ++i) {
            const float value = row[i] * scale * w[i];
            if (bf16) {
                y.data<uint16_t>()[r * d + i] = f32_to_bf16(value);
            } else {
                y.data<float>()[r * d + i] = value;
            }
        }
    }
}

}  // namespace fourbit::cpu
