// fourbit's NVFP4 weights against llmcompressor's on the same model, from golden data made by
// llmcompressor itself on the GPU machine (golden/llmcompressor_tiny.safetensors, cut by
// tools/reference/make_llmcompressor_golden.py; reference_check.md step C): the two agree on the
// scheme (fused-group global scales, E4M3 block scales, E2M1 round-to-nearest-even codes), and
// every difference comes from the two bfloat16 roundings llmcompressor makes where ModelOpt's
// formulas, which fourbit follows, stay in f32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "model/make_model.h"
#include "nvfp4/e2m1.h"
#include "nvfp4/quantize.h"
#include "support/temp_dir.h"
#include "tensor/numeric.h"

namespace fourbit {
namespace {

float to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

TEST(LlmcompressorGolden, SameSchemeAndEveryDifferenceIsItsBfloat16Rounding) {
    test_support::TempDir dir;
    MakeModelOptions make;  // the model the golden data was made from: tiny, seed 1
    make.preset = "tiny";
    make.seed = 1;
    make.out_dir = dir / "tiny";
    make_model(make);
    const Checkpoint source = Checkpoint::open(dir / "tiny");
    auto golden = SafetensorsFile::open(std::string(FOURBIT_SOURCE_DIR) +
                                        "/tests/quantize/golden/llmcompressor_tiny.safetensors");
    auto values = [&](const std::string& module) {
        const Tensor w = source.tensor(module + ".weight");
        std::vector<float> out(w.numel());
        for (int64_t i = 0; i < w.numel(); ++i) out[i] = bf16_to_f32(w.data<uint16_t>()[i]);
        return out;
    };
    const std::vector<std::vector<std::string>> groups = {
        {"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
         "model.layers.1.self_attn.v_proj"},
        {"model.layers.2.block_sparse_moe.experts.5.w1",
         "model.layers.2.block_sparse_moe.experts.5.w3"},
        {"model.layers.2.block_sparse_moe.experts.5.w2"}};
    int64_t n_blocks = 0, ours_differ = 0;
    for (const std::vector<std::string>& group : groups) {
        float amax = 0;
        for (const std::string& m : group) {
            for (float v : values(m)) amax = std::max(amax, std::fabs(v));
        }
        for (const std::string& m : group) {
            SCOPED_TRACE(m);
            const float g = *golden->tensor(m + ".weight_global_scale").data<float>();
            // 1. Its global scale: 2688 / (fused-group amax), computed in bfloat16.
            EXPECT_EQ(g, to_bf16(2688.0f / amax));
            const Tensor packed = golden->tensor(m + ".weight_packed");
            const Tensor scales = golden->tensor(m + ".weight_scale");
            const std::vector<float> w = values(m);
            const int64_t rows = source.entry(m + ".weight").shape[0];
            const int64_t cols = source.entry(m + ".weight").shape[1];
            const NvFp4Matrix ours =
                quantize_nvfp4(w, rows, cols, nvfp4_export_global_scale(amax), m);
            for (int64_t b = 0; b < rows * cols / 16; ++b) {
                float bmax = 0;
                for (int i = 0; i < 16; ++i) bmax = std::max(bmax, std::fabs(w[b * 16 + i]));
                const uint8_t theirs = scales.data<uint8_t>()[b];
                // 2. Its block scale: e4m3(bf16(bmax / 6) * global).
                ASSERT_EQ(theirs, f32_to_f8_e4m3(std::min(to_bf16(bmax / 6.0f) * g, 448.0f)))
                    << "block " << b;
                // 3. Its codes: e2m1, nearest even, of x / (scale / global) in f32.
                const float step = f8_e4m3_to_f32(theirs) / g;
                for (int i = 0; i < 16; ++i) {
                    const int64_t k = b * 16 + i;
                    const uint8_t byte = packed.data<uint8_t>()[k / 2];
                    const uint8_t code = k % 2 == 0 ? (byte & 0xf) : (byte >> 4);
                    const uint8_t expected = e2m1_encode(w[k] / step);
                    if ((code & 7) == 0 && (expected & 7) == 0) continue;  // +0 / -0
                    ASSERT_EQ(code, expected) << "element " << k;
                }
                // Ours differ only where the roundings move a block scale, by one E4M3 step.
                const uint8_t mine = ours.block_scales[b];
                ++n_blocks;
                if (mine != theirs) {
                    ++ours_differ;
                    EXPECT_EQ(std::abs(int(mine) - int(theirs)), 1) << "block " << b;
                }
            }
        }
    }
    // Those roundings move a few percent of the block scales (reference_check.md: 11,033 of
    // 237,568 over the whole model).
    EXPECT_GT(ours_differ, 0);
    EXPECT_LT(ours_differ, n_blocks / 10);
}

}  // namespace
}  // namespace fourbit
