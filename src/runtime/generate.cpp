#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model/sequence_cache.h"
#include "util/error.h"

namespace fourbit {

GenerateResult generate(const MiniMaxM2& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, Sampler& sampler,
                        const std::function<void(int32_t)>& on_token) {
    if (prompt.empty()) fail("the prompt has no tokens");
    if (options.max_tokens < 0) fail("max tokens must be >= 0, got {}", options.max_tokens);
    using Clock = std::chrono::steady_clock;
    GenerateResult result;
    result.finish_reason = "length";
    SequenceCache cache(model.config(), static_cast<int64_t>(prompt.size()) + options.max_tokens);
    std::vector<int32_t> next = prompt;
    auto start = Clock::now();
    for (int64_t step = 0; step < options.max_tokens; ++step) {
        Tensor logits = cache.forward(model, next);
        auto now = Clock::now();
        (step == 0 ? result.prefill_seconds : result.decode_seconds) +=
            std::chrono::duration<double>(now - start).count();
        start = now;
        std::span<const float> row(logits.data<float>(), static_cast<size_t>(logits.dim(1)));
        if (std::any_of(row.begin(), row.end(), [](float x) { return !std::isfinite(x); })) {
            fail(
                "the model produced non-finite logits at generated token {}: the checkpoint's "
                "weights may hold NaN or Inf",
                step);
        }
        int32_t token = sampler.sample(row);
        result.token_ids.push_back(token);
        if (on_token) on_token(token);
        const auto& eos = options.eos_token_ids;
        if (!options.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
            result.finish_reason = "stop";
            break;
        }
        next.assign(1, token);
    }
    return result;
}

}  // namespace fourbit
