#include "quantize/eval_metrics.h"

#include <cmath>
#include <limits>
#include <vector>

#include "util/error.h"

namespace fourbit {

namespace {

// log_softmax of one row, in double; Error on a non-finite logit.
void log_softmax(const float* row, int64_t vocab, std::vector<double>& out, int64_t row_index) {
    double max = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < vocab; ++v) {
        if (!std::isfinite(row[v])) fail("logit row {} holds a non-finite value at {}", row_index, v);
        max = std::max(max, static_cast<double>(row[v]));
    }
    double sum = 0;
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    const double log_sum = std::log(sum) + max;
    out.resize(vocab);
    for (int64_t v = 0; v < vocab; ++v) out[v] = row[v] - log_sum;
}

int64_t argmax(const float* row, int64_t vocab) {
    int64_t best = 0;
    for (int64_t v = 1; v < vocab; ++v) {
        if (row[v] > row[best]) best = v;
    }
    return best;
}

double ratio(double numerator, int64_t denominator) {
    return denominator == 0 ? std::nan("") : numerator / static_cast<double>(denominator);
}

}  // namespace

double NextTokenMetrics::perplexity() const { return std::exp(ratio(nll_sum, n_predictions)); }
double NextTokenMetrics::reference_perplexity() const {
    return std::exp(ratio(reference_nll_sum, n_predictions));
}
double NextTokenMetrics::mean_kl() const { return ratio(kl_sum, n_predictions); }
double NextTokenMetrics::top1_agreement() const {
    return ratio(static_cast<double>(n_top1_agree), n_predictions);
}

void NextTokenMetrics::merge(const NextTokenMetrics& other) {
    n_predictions += other.n_predictions;
    nll_sum += other.nll_sum;
    has_reference = has_reference || other.has_reference;
    kl_sum += other.kl_sum;
    n_top1_agree += other.n_top1_agree;
    reference_nll_sum += other.reference_nll_sum;
}

void add_next_token_metrics(const Tensor& logits, const Tensor* reference,
                            std::span<const int32_t> token_ids, NextTokenMetrics& metrics) {
    const int64_t n = logits.dim(0), vocab = logits.dim(1);
    FOURBIT_ASSERT(n == static_cast<int64_t>(token_ids.size()), "one logit row per token");
    FOURBIT_ASSERT(!reference || reference->shape() == logits.shape(), "reference shape");
    metrics.has_reference = metrics.has_reference || reference != nullptr;
    std::vector<double> log_q, log_p;
    for (int64_t i = 0; i + 1 < n; ++i) {
        const float* row = logits.data<float>() + i * vocab;
        log_softmax(row, vocab, log_q, i);
        const int32_t next = token_ids[i + 1];
        metrics.nll_sum -= log_q[next];
        ++metrics.n_predictions;
        if (!reference) continue;
        const float* reference_row = reference->data<float>() + i * vocab;
        log_softmax(reference_row, vocab, log_p, i);
        double kl = 0;
        for (int64_t v = 0; v < vocab; ++v) kl += std::exp(log_p[v]) * (log_p[v] - log_q[v]);
        metrics.kl_sum += std::max(kl, 0.0);  // rounding can leave a tiny negative
        metrics.reference_nll_sum -= log_p[next];
        metrics.n_top1_agree += argmax(row, vocab) == argmax(reference_row, vocab) ? 1 : 0;
    }
}

}  // namespace fourbit
