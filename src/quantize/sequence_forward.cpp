#include "quantize/sequence_forward.h"

#include "model/kv_cache.h"

namespace fourbit {

Tensor sequence_logits(const MiniMaxM2& model, std::span<const int32_t> token_ids) {
    KvCache cache(model.config());
    const SequenceInput input{token_ids, &cache, true};
    return model.forward({&input, 1});
}

void observe_sequence(const MiniMaxM2& model, std::span<const int32_t> token_ids,
                      ForwardObserver& observer) {
    KvCache cache(model.config());
    const SequenceInput input{token_ids, &cache, false};
    model.forward({&input, 1}, &observer);
}

}  // namespace fourbit
