// The tests' plain decoding loop, outside the engine: prefill, then one token at a time from a
// SequenceCache, always the argmax. The oracle that the engine (batching, paging, preemption,
// speculation) and transformers' greedy continuations are compared against.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/sequence_cache.h"

namespace fourbit::test_support {

inline std::vector<int32_t> greedy_reference(const MiniMaxM2& model,
                                             const std::vector<int32_t>& prompt, int64_t max_tokens,
                                             DType kv_cache_dtype = DType::f32) {
    SequenceCache cache(model, static_cast<int64_t>(prompt.size()) + max_tokens, 16,
                        kv_cache_dtype);
    std::vector<int32_t> out, next = prompt;
    while (static_cast<int64_t>(out.size()) < max_tokens) {
        Tensor logits = cache.forward(model, next);
        const float* row = logits.data<float>();
        // The first maximum: ties go to the lower id, as the sampler breaks them.
        const int32_t token = static_cast<int32_t>(std::max_element(row, row + logits.dim(1)) - row);
        out.push_back(token);
        next.assign(1, token);
    }
    return out;
}

}  // namespace fourbit::test_support
