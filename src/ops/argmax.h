// argmax_rows: greedy decoding's choice, made where the logits are, so that a decode step on a
// device sends back one id per row instead of the whole vocabulary's logits.
#pragma once

#include "tensor/tensor.h"

namespace fourbit {

// ids[r] = the index of row r's largest value (the first of equals, as std::max_element picks
// it), or -1 where the row holds a NaN or an infinity. x [rows, n] f32, ids [rows] i32.
void argmax_rows(const Tensor& x, Tensor& ids);

namespace cpu {
void argmax_rows(const Tensor& x, Tensor& ids);
}
namespace cuda {
void argmax_rows(const Tensor& x, Tensor& ids);
}

}  // namespace fourbit
