#include "ops/linear.h"

#include "util/error.h"

namespace fourbit {

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    const Tensor& w = weight.weight;
    FOURBIT_ASSERT(x.rank() == 2 && w.rank() == 2 && y.rank() == 2, "linear takes matrices");
    FOURBIT_ASSERT(x.dtype() == DType::f32 && y.dtype() == DType::f32, "linear: f32 activations");
    FOURBIT_ASSERT(x.dim(1) == weight.cols(), "linear: x {} against W {}", shape_text(x.shape()),
                   shape_text(w.shape()));
    FOURBIT_ASSERT(y.dim(0) == x.dim(0) && y.dim(1) == w.dim(0), "linear: y {} for x {}, W {}",
                   shape_text(y.shape()), shape_text(x.shape()), shape_text(w.shape()));
    switch (w.dtype()) {
        case DType::f32:
        case DType::bf16:
            break;
        case DType::f8_e4m3: {
            const Tensor& s = weight.block_scale;
            FOURBIT_ASSERT(weight.block_rows > 0 && weight.block_cols > 0 && s.rank() == 2 &&
                               s.dtype() == DType::f32 &&
                               s.dim(0) == (w.dim(0) + weight.block_rows - 1) / weight.block_rows &&
                               s.dim(1) == (w.dim(1) + weight.block_cols - 1) / weight.block_cols,
                           "linear: fp8 block scale {} does not tile W {}", shape_text(s.shape()),
                           shape_text(w.shape()));
            break;
        }
        case DType::u8: {
            const Tensor& s = weight.block_scale;
            FOURBIT_ASSERT(weight.cols() % 16 == 0 && s.dtype() == DType::f8_e4m3 &&
                               s.shape() == Shape({w.dim(0), weight.cols() / 16}),
                           "linear: nvfp4 block scale {} does not tile W {}", shape_text(s.shape()),
                           shape_text(w.shape()));
            FOURBIT_ASSERT(weight.global_scale > 0.0f, "linear: nvfp4 global scale {}",
                           weight.global_scale);
            FOURBIT_ASSERT(!weight.emulate_w4a4 || weight.input_scale > 0.0f,
                           "linear: W4A4 emulation needs an input scale");
            break;
        }
        default:
            FOURBIT_ASSERT(false, "linear: no kernel for weights of dtype {}",
                           dtype_name(w.dtype()));
    }
    cpu::linear(x, weight, y);
}

}  // namespace fourbit
