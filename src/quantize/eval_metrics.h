// Quality of a model's next-token distributions: perplexity on the data, and against a
// reference model on the same tokens the mean KL divergence KL(reference || model) and the
// top-1 agreement (how often both rank the same token first). Accumulated per dataset in double.
#pragma once

#include <cstdint>
#include <span>

#include "tensor/tensor.h"

namespace fourbit {

struct NextTokenMetrics {
    int64_t n_predictions = 0;
    double nll_sum = 0;  // -log p(actual next token)
    bool has_reference = false;
    double kl_sum = 0;
    int64_t n_top1_agree = 0;
    double reference_nll_sum = 0;

    double perplexity() const;
    double reference_perplexity() const;
    double mean_kl() const;
    double top1_agreement() const;  // fraction in [0, 1]
    void merge(const NextTokenMetrics& other);
};

// Adds the predictions of one sequence: row i of `logits` ([n, vocab] f32, every position)
// predicts token_ids[i + 1]. `reference` (same shape) may be null. A non-finite logit is an
// Error naming the row.
void add_next_token_metrics(const Tensor& logits, const Tensor* reference,
                            std::span<const int32_t> token_ids, NextTokenMetrics& metrics);

}  // namespace fourbit
