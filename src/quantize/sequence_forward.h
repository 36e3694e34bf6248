// One sequence through the model on its own cache: the only place quantize and eval call the
// forward pass, so that a change of the model's API touches one file.
#pragma once

#include <cstdint>
#include <span>

#include "model/forward_observer.h"
#include "model/minimax_m2.h"

namespace fourbit {

// Logits of every position ([n, vocab] f32).
Tensor sequence_logits(const MiniMaxM2& model, std::span<const int32_t> token_ids);

// Runs the sequence for its activations only (the last position's logits are discarded).
void observe_sequence(const MiniMaxM2& model, std::span<const int32_t> token_ids,
                      ForwardObserver& observer);

}  // namespace fourbit
