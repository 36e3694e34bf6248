// embedding: out[t] = table[ids[t]] as f32. Ids are checked by the caller (the model), which
// knows where they came from; on the host they are checked again, on a device (ids a tensor on
// the table's device) they cannot be without a sync, and an id out of range writes a NaN row.
// The span form is host ids: for host tables.
//   table [vocab, hidden] f32 or bf16    out [n_tokens, hidden] f32
#pragma once

#include <cstdint>
#include <span>

#include "tensor/tensor.h"

namespace fourbit {

void embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out);
void embedding(const Tensor& ids, const Tensor& table, Tensor& out);

namespace cpu {
void embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out);
}
namespace cuda {
void embedding(const Tensor& ids, const Tensor& table, Tensor& out);
}

}  // namespace fourbit
