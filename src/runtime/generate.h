// Generation for one sequence: prefill the prompt, then decode token by token from the cache.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/minimax_m2.h"
#include "runtime/sampler.h"

namespace fourbit {

struct GenerateOptions {
    int64_t max_tokens = 16;
    bool ignore_eos = false;
    std::vector<int64_t> eos_token_ids;
};

struct GenerateResult {
    std::vector<int32_t> token_ids;
    std::string finish_reason;  // "stop" (an EOS) or "length"
    double prefill_seconds = 0;
    double decode_seconds = 0;
};

// Calls `on_token` after each new token, if given (for streaming to a terminal).
GenerateResult generate(const MiniMaxM2& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, Sampler& sampler,
                        const std::function<void(int32_t)>& on_token = {});

}  // namespace fourbit
