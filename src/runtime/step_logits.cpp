#include "runtime/step_logits.h"

#include <algorithm>
#include <cmath>

namespace fourbit {

StepLogits StepLogits::full(Tensor logits) {
    StepLogits step;
    step.logits_ = std::move(logits);
    return step;
}

StepLogits StepLogits::candidates(TopLogits top) {
    StepLogits step;
    step.logits_ = std::move(top.values);
    step.ids_ = std::move(top.ids);
    return step;
}

std::span<const float> StepLogits::values(int64_t r) const {
    const int64_t width = logits_.dim(1);
    return {logits_.data<float>() + r * width, static_cast<size_t>(width)};
}

bool StepLogits::finite(int64_t first, int64_t count) const {
    for (int64_t r = first; r < first + count; ++r) {
        if (ids_.defined()) {
            if (ids_.data<int32_t>()[r * ids_.dim(1)] < 0) return false;  // top_k_rows' mark
        } else {
            const std::span<const float> row = values(r);
            if (!std::all_of(row.begin(), row.end(), [](float x) { return std::isfinite(x); })) {
                return false;
            }
        }
    }
    return true;
}

int32_t StepLogits::sample(Sampler& sampler, int64_t r) const {
    const int32_t index = sampler.sample(values(r));
    return ids_.defined() ? ids_.data<int32_t>()[r * ids_.dim(1) + index] : index;
}

int32_t StepLogits::verify(Sampler& sampler, int64_t r, int32_t draft) const {
    if (!ids_.defined()) return sampler.verify(values(r), draft);
    // The draft by its place among the candidates; -1 (never kept) where it is not one.
    const int32_t* ids = ids_.data<int32_t>() + r * ids_.dim(1);
    const int32_t* found = std::find(ids, ids + ids_.dim(1), draft);
    const int32_t at = found == ids + ids_.dim(1) ? -1 : static_cast<int32_t>(found - ids);
    return ids[sampler.verify(values(r), at)];
}

std::span<const float> StepLogits::row(int64_t r) const {
    return ids_.defined() ? std::span<const float>() : values(r);
}

}  // namespace fourbit
