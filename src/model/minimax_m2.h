// The MiniMax-M2 model: weights plus the forward pass over a batch of sequences.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/forward_observer.h"
#include "model/kv_pool.h"
#include "model/step_buffers.h"
#include "model/weights.h"

namespace fourbit {

// Which of a sequence's new tokens get a row of logits.
enum class LogitRows : uint8_t {
    none,  // a prompt chunk that does not end the prompt: nothing to sample yet
    last,  // the next token's distribution
    all,   // every new token's (scoring, verification)
};

// One sequence's part of a batch: its new tokens, at positions n_cached ... after what its
// blocks already hold.
struct SequenceInput {
    std::span<const int32_t> token_ids;
    int64_t n_cached = 0;  // positions whose keys and values the pool holds for this sequence
    // The sequence's blocks in the pool, covering n_cached + token_ids.size() positions.
    std::span<const int32_t> block_table;
    LogitRows logits = LogitRows::last;
};

struct StepIndices;  // a step's ids and tables (minimax_m2.cpp)

// The most likely tokens of each logit row (MiniMaxM2::forward_top_k).
struct TopLogits {
    Tensor values;  // [rows, k] f32
    Tensor ids;     // [rows, k] i32
};

class MiniMaxM2 {
public:
    explicit MiniMaxM2(ModelWeights weights);

    const MiniMaxM2Config& config() const { return weights_.config; }
    const ModelWeights& weights() const { return weights_; }

    // Runs the new tokens of every sequence through the model, writes their keys and values
    // into `pool` through each block table, and returns logits [rows, vocab] f32 on the host:
    // per sequence in batch order, the rows its LogitRows asks for (possibly none at all: then
    // [0, vocab]). The model runs where its weights are (weights_to_device), and the pool must
    // be there too. A token id outside the vocabulary or a block table that does not reach a
    // token's position is an Error. `observer`, when given, sees every Linear's input rows
    // layer by layer (calibration, host only); null costs nothing.
    // NOTE: every sequence's keys and values are written before any attention reads the pool,
    // so sequences of one batch may share blocks that one of them fills in this very step.
    Tensor forward(std::span<const SequenceInput> batch, const KvPool& pool,
                   ForwardObserver* observer = nullptr) const;

    // As forward, but returns each logit row's k most likely tokens, chosen where the logits
    // are (top_k_rows: values and ids [rows, k] on the host, largest first; ids all -1 for a
    // row with a non-finite value). A device step then sends back k pairs a row, not the
    // vocabulary's logits: greedy decoding takes k = 1, a sampler with top_k <= k the rest.
    TopLogits forward_top_k(std::span<const SequenceInput> batch, const KvPool& pool,
                            int64_t k) const;

private:
    // forward's work: the step's logits where they were computed, handed to `finish` (which
    // runs before another step may reuse their buffer).
    template <typename Finish>
    auto forward_step(std::span<const SequenceInput> batch, const KvPool& pool,
                      ForwardObserver* observer, Finish finish) const;
    struct DeviceState;  // the step buffers and recorded graphs of device steps
    void run_step(const StepIndices& step, const KvPool& pool, StepActivations& a,
                  ForwardObserver* observer) const;

    ModelWeights weights_;
    std::shared_ptr<DeviceState> device_state_;
};

}  // namespace fourbit
