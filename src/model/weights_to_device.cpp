// Host weights onto a CUDA device, once at load.
#include "model/weights.h"
#include "util/error.h"
#include "util/progress.h"

namespace fourbit {

namespace {

// A norm or bias: copied as it is (empty tensors stay empty).
Tensor copied(const Tensor& tensor, Device device) {
    return tensor.defined() && tensor.numel() > 0 ? tensor.to(device) : tensor;
}

}  // namespace

ModelWeights weights_to_device(const ModelWeights& weights, Device device) {
    FOURBIT_ASSERT(weights.device().is_host(), "weights_to_device: the weights must be on the host");
    if (device.is_host()) return weights;
    ModelWeights moved;
    moved.config = weights.config;
    moved.embed_tokens = weights.embed_tokens.to(device);
    moved.final_norm = weights.final_norm.to(device);
    moved.lm_head = linear_weight_to(weights.lm_head, device);
    Progress progress("to " + device_text(device), weights.layers.size(), "layers");
    for (const LayerWeights& layer : weights.layers) {
        LayerWeights& to = moved.layers.emplace_back();
        to.input_norm = layer.input_norm.to(device);
        to.q = linear_weight_to(layer.q, device);
        to.k = linear_weight_to(layer.k, device);
        to.v = linear_weight_to(layer.v, device);
        to.qkv = stack_linears({&to.q, &to.k, &to.v});
        to.o = linear_weight_to(layer.o, device);
        to.q_norm = layer.q_norm.to(device);
        to.k_norm = layer.k_norm.to(device);
        to.post_attention_norm = layer.post_attention_norm.to(device);
        to.router = linear_weight_to(layer.router, device);
        to.routing_bias = copied(layer.routing_bias, device);
        to.grouped_experts = group_experts(layer.experts, device);
        progress.advance(1);
    }
    progress.finish();
    return moved;
}

}  // namespace fourbit
