// What a forward pass shows an observer (calibration): the input rows of every Linear of each
// layer and the routing. The forward calls it only when one is given, so serving pays nothing.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace fourbit {

class ForwardObserver {
public:
    virtual ~ForwardObserver() = default;
    // h [T, H] f32: the normed input of q_proj, k_proj and v_proj of `layer`.
    virtual void attention_input(int64_t layer, const Tensor& h) = 0;
    // attended [T, Q] f32: the input of o_proj.
    virtual void attention_output(int64_t layer, const Tensor& attended) = 0;
    // h [T, H] f32: the input of the router and of every expert's w1 and w3; expert_ids [T, k]
    // i32: the experts each token is routed to. The experts' w2 input is theirs to compute.
    virtual void moe_input(int64_t layer, const Tensor& h, const Tensor& expert_ids) = 0;
};

}  // namespace fourbit
