// The activations of one forward step. On a CUDA device they are views of buffers the model
// keeps from step to step, so that a step allocates nothing and a captured graph (ops/
// step_graph.h) finds its buffers where it left them; on the host they are fresh zeros.
#pragma once

#include <cstdint>

#include "formats/model_config.h"
#include "tensor/tensor.h"

namespace fourbit {

struct StepActivations {
    Tensor x;               // [T, H] the residual stream
    Tensor h;               // [T, H] normed input of each block
    Tensor h_bf16;          // [T, H] the same rounded to bf16, for NVFP4 linears and experts
                            //        (a device's only: undefined on the host)
    Tensor q, k, v;         // [T, Q], [T, KV], [T, KV]
    Tensor attended;        // [T, Q]
    Tensor attended_bf16;   // [T, Q] the same rounded to bf16, where an NVFP4 o_proj reads it
                            //        (a device's only)
    Tensor block_out;       // [T, H]
    Tensor router_logits;   // [T, E]
    Tensor expert_ids;      // [T, k] i32
    Tensor expert_weights;  // [T, k]
    Tensor final_rows;      // [R, H] the rows that get logits
    Tensor logits;          // [R, V]
};

class StepBuffers {
public:
    StepActivations activations(const MiniMaxM2Config& config, Device device, int64_t n_tokens,
                                int64_t n_rows);
    // An i32 buffer of `n` entries on `device` for the step's indices (device only).
    Tensor indices(Device device, int64_t n);
    // Changes whenever a device buffer is reallocated (graphs that captured the old ones are
    // stale then).
    uint64_t generation() const { return generation_; }

private:
    Tensor grown(Tensor& buffer, DType dtype, Device device, int64_t rows, int64_t cols);
    Tensor x_, h_, h_bf16_, q_, k_, v_, attended_, attended_bf16_, block_out_, router_logits_,
        expert_ids_, expert_weights_, final_rows_, logits_, indices_;
    uint64_t generation_ = 0;
};

}  // namespace fourbit
