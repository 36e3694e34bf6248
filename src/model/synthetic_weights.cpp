#include "model/synthetic_weights.h"

#include <fmt/format.h>

#include <cmath>

#include "formats/module_pattern.h"
#include "model/make_model.h"
#include "ops/nvfp4_tiles.h"
#include "ops/random_fill.h"
#include "util/progress.h"

namespace fourbit {

namespace {

// Block scales: e4m3 1.0 .. 1.875 (exponent field 7), or the tiles' E5M3 of the same values
// (exponent field 10); codes uniform, so E[e2m1^2] = 8.5625 and E[scale^2] ~ 2.1.
constexpr uint8_t kE4m3ScaleLow = 7 << 3, kE4m3ScaleHigh = (7 << 3) | 7;
constexpr uint8_t kTileScaleLow = 10 << 3, kTileScaleHigh = (10 << 3) | 7;

// The global scale that gives weights of variance 1 / k.
float nvfp4_global_scale_for(int64_t k) {
    return static_cast<float>(1.0 / std::sqrt(8.5625 * 2.1 * static_cast<double>(k)));
}

class Maker {
public:
    Maker(Device device, uint64_t seed) : device_(device), seed_(seed) {}

    Tensor uniform(DType dtype, Shape shape, float low, float high) {
        Tensor tensor = Tensor::zeros(dtype, std::move(shape), device_);
        fill_uniform(tensor, low, high, next_seed());
        return tensor;
    }
    Tensor bytes(DType dtype, Shape shape, uint8_t low, uint8_t high) {
        Tensor tensor = Tensor::zeros(dtype, std::move(shape), device_);
        fill_bytes(tensor, low, high, next_seed());
        return tensor;
    }

    // [n, k], variance 1 / k.
    LinearWeight linear(int64_t n, int64_t k, bool nvfp4) {
        LinearWeight w;
        if (!nvfp4) {
            const float bound = std::sqrt(3.0f / static_cast<float>(k));
            w.weight = uniform(DType::bf16, {n, k}, -bound, bound);
            return w;
        }
        const bool tiles = device_.is_cuda();
        w.weight = bytes(DType::u8, {n, k / 2}, 0, 255);
        w.block_scale = bytes(DType::f8_e4m3, {n, k / 16}, tiles ? kTileScaleLow : kE4m3ScaleLow,
                              tiles ? kTileScaleHigh : kE4m3ScaleHigh);
        w.global_scale = nvfp4_global_scale_for(k);
        w.nvfp4_layout = tiles ? NvFp4Layout::cuda_tiles : NvFp4Layout::rows;
        return w;
    }

    Tensor norm(int64_t n) { return uniform(DType::bf16, {n}, 0.8f, 1.2f); }

    // One layer's experts: grouped on CUDA, a list on the host.
    void experts(const MiniMaxM2Config& c, bool nvfp4, LayerWeights& layer) {
        const int64_t n = c.num_local_experts, h = c.hidden_size, i = c.intermediate_size;
        if (device_.is_host()) {
            for (int64_t e = 0; e < n; ++e) {
                layer.experts.push_back({linear(i, h, nvfp4), linear(i, h, nvfp4), linear(h, i, nvfp4)});
            }
            return;
        }
        GroupedExperts& g = layer.grouped_experts;
        g.hidden = h;
        g.intermediate = i;
        g.count = n;
        if (!nvfp4) {
            const float up_bound = std::sqrt(3.0f / h), down_bound = std::sqrt(3.0f / i);
            g.gate_up_dense = uniform(DType::bf16, {n, 2 * i, h}, -up_bound, up_bound);
            g.down_dense = uniform(DType::bf16, {n, h, i}, -down_bound, down_bound);
            return;
        }
        g.gate_up_codes = bytes(DType::u8, {n, 2 * i, h / 2}, 0, 255);
        g.gate_up_scales = bytes(DType::u8, {n, 2 * i, h / 16}, kTileScaleLow, kTileScaleHigh);
        g.down_codes = bytes(DType::u8, {n, h, i / 2}, 0, 255);
        g.down_scales = bytes(DType::u8, {n, h, i / 16}, kTileScaleLow, kTileScaleHigh);
        Tensor scales = Tensor::zeros(DType::f32, {n, 3});
        for (int64_t e = 0; e < n; ++e) {
            scales.data<float>()[3 * e] = std::ldexp(nvfp4_global_scale_for(h), kNvFp4TileExponent);
            scales.data<float>()[3 * e + 1] = std::ldexp(nvfp4_global_scale_for(h), kNvFp4TileExponent);
            scales.data<float>()[3 * e + 2] = std::ldexp(nvfp4_global_scale_for(i), kNvFp4TileExponent);
        }
        g.out_scales = scales.to(device_);
    }

private:
    uint64_t next_seed() { return seed_ * 1000003 + counter_++; }
    Device device_;
    uint64_t seed_;
    uint64_t counter_ = 0;
};

}  // namespace

ModelWeights synthetic_weights(const MiniMaxM2Config& c, bool nvfp4, bool keep_edge_layers_bf16,
                               Device device, uint64_t seed) {
    std::vector<ModulePattern> ignore;
    for (const std::string& text :
         seed_ignore_list(c, QuantizationFormat::nvfp4_modelopt, keep_edge_layers_bf16)) {
        ignore.push_back(ModulePattern::parse(text, "the seed ignore list"));
    }
    auto quantized = [&](const std::string& module) {
        return nvfp4 && first_match(ignore, module) == nullptr;
    };
    Maker make(device, seed);
    ModelWeights w;
    w.config = c;
    w.embed_tokens = make.uniform(DType::bf16, {c.vocab_size, c.hidden_size}, -1.0f, 1.0f);
    Progress progress("synthetic weights on " + device_text(device),
                      static_cast<uint64_t>(c.num_hidden_layers), "layers");
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        const std::string prefix = fmt::format("model.layers.{}.", l);
        LayerWeights& layer = w.layers.emplace_back();
        layer.input_norm = make.norm(c.hidden_size);
        layer.q = make.linear(c.q_width(), c.hidden_size, quantized(prefix + "self_attn.q_proj"));
        layer.k = make.linear(c.kv_width(), c.hidden_size, quantized(prefix + "self_attn.k_proj"));
        layer.v = make.linear(c.kv_width(), c.hidden_size, quantized(prefix + "self_attn.v_proj"));
        layer.qkv = stack_linears({&layer.q, &layer.k, &layer.v});
        layer.o = make.linear(c.hidden_size, c.q_width(), quantized(prefix + "self_attn.o_proj"));
        layer.q_norm = make.norm(c.q_width());
        layer.k_norm = make.norm(c.kv_width());
        layer.post_attention_norm = make.norm(c.hidden_size);
        layer.router = make.linear(c.num_local_experts, c.hidden_size, false);
        layer.routing_bias = make.uniform(DType::bf16, {c.num_local_experts}, -0.1f, 0.1f);
        make.experts(c, quantized(prefix + "block_sparse_moe.experts.0.w1"), layer);
        progress.advance(1);
    }
    progress.finish();
    w.final_norm = make.norm(c.hidden_size);
    w.lm_head = make.linear(c.vocab_size, c.hidden_size, false);
    return w;
}

}  // namespace fourbit
