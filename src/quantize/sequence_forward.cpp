#include "quantize/sequence_forward.h"

#include "model/sequence_cache.h"

namespace fourbit {

Tensor sequence_logits(const MiniMaxM2& model, std::span<const int32_t> token_ids) {
    SequenceCache cache(model, static_cast<int64_t>(token_ids.size()));
    return cache.forward(model, token_ids, LogitRows::all);
}

void observe_sequence(const MiniMaxM2& model, std::span<const int32_t> token_ids,
                      ForwardObserver& observer) {
    SequenceCache cache(model, static_cast<int64_t>(token_ids.size()));
    // No position's logits are needed: the observers see every layer's inputs.
    cache.forward(model, token_ids, LogitRows::none, &observer);
}

}  // namespace fourbit
