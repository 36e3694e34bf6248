// Synthetic weights (bench-model --synthetic-weights): the same modules, shapes, formats and
// bytes as the checkpoint make-model writes for the preset, and a forward that stays finite;
// on the host here, and on a CUDA device where there is one.
#include "model/synthetic_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/make_model.h"
#include "model/minimax_m2.h"
#include "model/sequence_cache.h"
#include "support/temp_dir.h"
#include "tensor/cuda_memory.h"

namespace fourbit {
namespace {

void expect_same_form(const LinearWeight& a, const LinearWeight& b, const std::string& what) {
    EXPECT_EQ(a.weight.dtype(), b.weight.dtype()) << what;
    EXPECT_EQ(a.weight.shape(), b.weight.shape()) << what;
    EXPECT_EQ(a.block_scale.defined(), b.block_scale.defined()) << what;
    if (a.block_scale.defined()) {
        EXPECT_EQ(a.block_scale.shape(), b.block_scale.shape()) << what;
    }
}

TEST(SyntheticWeights, MatchTheFormOfMakeModelsCheckpoint) {
    test_support::TempDir dir;
    MakeModelOptions options;
    options.preset = "tiny";
    options.format = QuantizationFormat::nvfp4_modelopt;
    options.out_dir = dir.path().string();
    make_model(options);
    const ModelWeights written = load_model_weights(options.out_dir);
    const ModelWeights made = synthetic_weights(written.config, true, true, Device::host(), 3);
    ASSERT_EQ(made.layers.size(), written.layers.size());
    expect_same_form(made.lm_head, written.lm_head, "lm_head");
    EXPECT_EQ(made.embed_tokens.shape(), written.embed_tokens.shape());
    for (size_t l = 0; l < made.layers.size(); ++l) {
        const LayerWeights &m = made.layers[l], &w = written.layers[l];
        const std::string layer = "layer " + std::to_string(l);
        expect_same_form(m.q, w.q, layer + " q");
        expect_same_form(m.k, w.k, layer + " k");
        expect_same_form(m.o, w.o, layer + " o");
        expect_same_form(m.router, w.router, layer + " router");
        ASSERT_EQ(m.experts.size(), w.experts.size()) << layer;
        expect_same_form(m.experts[0].gate, w.experts[0].gate, layer + " expert gate");
        expect_same_form(m.experts[0].down, w.experts[0].down, layer + " expert down");
    }
    EXPECT_EQ(weight_bytes_per_decoded_token(made), weight_bytes_per_decoded_token(written));
}

void expect_finite_decode(Device device) {
    const MiniMaxM2Config config = preset_config("tiny", std::nullopt);
    const MiniMaxM2 model(synthetic_weights(config, true, false, device, 5));
    SequenceCache cache(model, 40, 16);
    std::vector<int32_t> next{1, 2, 3, 4, 5, 6, 7, 8};
    for (int step = 0; step < 8; ++step) {
        const Tensor logits = cache.forward(model, next);
        int32_t best = 0;
        for (int64_t i = 0; i < logits.dim(1); ++i) {
            ASSERT_TRUE(std::isfinite(logits.data<float>()[i])) << "step " << step << " logit " << i;
            if (logits.data<float>()[i] > logits.data<float>()[best]) best = static_cast<int32_t>(i);
        }
        next.assign(1, best);
    }
}

TEST(SyntheticWeights, ForwardStaysFiniteOnTheHost) { expect_finite_decode(Device::host()); }

TEST(SyntheticWeights, ForwardStaysFiniteOnCuda) {
    if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    expect_finite_decode(Device::cuda(0));
}

}  // namespace
}  // namespace fourbit
