// Loading NVFP4 checkpoints of both layouts into the model's LinearWeights, and each way a
// checkpoint can be refused: the Error must name the checkpoint directory and the module (or
// tensor). Also inspect_checkpoint on the same corruptions: every anomaly, not just the first.
// The checkpoints are make_model's tiny preset (layers 1-2 NVFP4, layers 0 and 3 BF16).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/model_config.h"
#include "formats/nvfp4_tensors.h"
#include "model/inspect_checkpoint.h"
#include "model/linear_modules.h"
#include "model/make_model.h"
#include "model/weights.h"
#include "nvfp4/quantize.h"
#include "support/temp_dir.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
constexpr QuantizationFormat kCt = QuantizationFormat::nvfp4_compressed_tensors;
constexpr QuantizationFormat kMo = QuantizationFormat::nvfp4_modelopt;

class Nvfp4Load : public test_support::TempDirTest {
protected:
    std::string make(QuantizationFormat format, const std::string& name) {
        MakeModelOptions options;
        options.preset = "tiny";
        options.seed = 1;
        options.format = format;
        options.out_dir = (dir_ / name).string();
        make_model(options);
        return options.out_dir;
    }

    // Rewrites the checkpoint in `dir`: `edit` may change each tensor's plan (return false to
    // drop it) and its bytes; `extra` tensors are added.
    using Edit = std::function<bool(TensorPlan& plan, std::vector<uint8_t>& bytes)>;
    void rewrite(const std::string& dir, const Edit& edit,
                 const std::vector<std::string>& extra = {}) {
        const std::string out = dir + ".edited";
        {
            Checkpoint checkpoint = Checkpoint::open(dir);
            std::vector<TensorPlan> plan;
            std::map<std::string, std::vector<uint8_t>> data;
            for (const std::string& name : checkpoint.tensor_names()) {
                Tensor tensor = checkpoint.tensor(name);
                TensorPlan p{name, tensor.dtype(), tensor.shape()};
                const auto* raw = static_cast<const uint8_t*>(tensor.raw());
                std::vector<uint8_t> bytes(raw, raw + tensor.size_bytes());
                if (!edit(p, bytes)) continue;
                data[p.name] = std::move(bytes);
                plan.push_back(std::move(p));
            }
            for (const std::string& name : extra) {
                data[name] = std::vector<uint8_t>(4, 0);
                plan.push_back({name, DType::f32, {1}});
            }
            write_sharded_checkpoint(
                out, plan,
                [&](const TensorPlan& p, std::span<uint8_t> bytes) {
                    std::memcpy(bytes.data(), data.at(p.name).data(), bytes.size());
                },
                1ull << 40);
        }
        for (const auto& entry : fs::directory_iterator(dir)) {
            if (entry.path().extension() == ".safetensors") fs::remove(entry.path());
        }
        for (const auto& entry : fs::directory_iterator(out)) {
            fs::rename(entry.path(), fs::path(dir) / entry.path().filename());
        }
        fs::remove_all(out);
    }

    // Sets the f32 scalar `name` to `value` as stored.
    void set_scalar(const std::string& dir, const std::string& name, float value) {
        rewrite(dir, [&](TensorPlan& plan, std::vector<uint8_t>& bytes) {
            if (plan.name == name) std::memcpy(bytes.data(), &value, sizeof(value));
            return true;
        });
    }

    // The Error of load_model_weights, which must name the directory.
    std::string load_error(const std::string& dir) {
        try {
            load_model_weights(dir);
        } catch (const Error& error) {
            const std::string message = error.what();
            EXPECT_NE(message.find(dir), std::string::npos) << "no directory in: " << message;
            return message;
        }
        ADD_FAILURE() << "loaded a checkpoint it should refuse: " << dir;
        return "";
    }
};

const std::string kQ1 = "model.layers.1.self_attn.q_proj";
const std::string kK1 = "model.layers.1.self_attn.k_proj";

TEST_F(Nvfp4Load, BothLayoutsLoadAsNvfp4WithIgnoredModulesBf16) {
    for (QuantizationFormat format : {kCt, kMo}) {
        ModelWeights weights = load_model_weights(make(format, "m"));
        SCOPED_TRACE(std::string(quantization_format_name(format)));
        ASSERT_EQ(weights.layers.size(), 4u);
        for (int layer : {1, 2}) {
            const LayerWeights& l = weights.layers[layer];
            for (const LinearWeight* w : {&l.q, &l.k, &l.v, &l.o, &l.experts[5].gate,
                                          &l.experts[5].up, &l.experts[15].down}) {
                EXPECT_EQ(w->format(), WeightFormat::nvfp4);
                EXPECT_GT(w->global_scale, 0.0f);
                // make-model's input amax 8, nudged to a reciprocal-stable scale.
                EXPECT_EQ(w->input_scale, reciprocal_stable_scale(8.0f / 2688.0f));
                EXPECT_FALSE(w->emulate_w4a4);
            }
            EXPECT_EQ(l.router.format(), WeightFormat::dense) << "routers are ignored";
            // Fused groups share one global scale.
            EXPECT_EQ(l.q.global_scale, l.k.global_scale);
            EXPECT_EQ(l.q.global_scale, l.v.global_scale);
            EXPECT_EQ(l.experts[3].gate.global_scale, l.experts[3].up.global_scale);
            EXPECT_TRUE(reciprocal_round_trips(l.q.global_scale));
        }
        for (int layer : {0, 3}) {
            EXPECT_EQ(weights.layers[layer].q.format(), WeightFormat::dense);
            EXPECT_EQ(weights.layers[layer].experts[0].down.format(), WeightFormat::dense);
        }
        EXPECT_EQ(weights.lm_head.format(), WeightFormat::dense);
        fs::remove_all(dir_ / "m");
    }
}

TEST_F(Nvfp4Load, EmulateW4a4OptionMarksModulesWithInputScales) {
    const std::string dir = make(kMo, "m");
    // Without input scales on one module, only the others are emulated.
    rewrite(dir, [](TensorPlan& plan, std::vector<uint8_t>&) {
        return plan.name != "model.layers.2.self_attn.o_proj.input_scale";
    });
    ModelWeights weights = load_model_weights(dir, LoadOptions{.emulate_w4a4 = true});
    EXPECT_TRUE(weights.layers[1].q.emulate_w4a4);
    EXPECT_TRUE(weights.layers[2].experts[0].down.emulate_w4a4);
    EXPECT_FALSE(weights.layers[2].o.emulate_w4a4);
    EXPECT_EQ(weights.layers[2].o.input_scale, 0.0f);
    EXPECT_FALSE(weights.layers[0].q.emulate_w4a4) << "BF16 modules are never emulated";
}

TEST_F(Nvfp4Load, NanWeightScale2IsRefusedNamingTheModule) {
    const std::string dir = make(kMo, "m");
    set_scalar(dir, kQ1 + ".weight_scale_2", std::nanf(""));
    const std::string message = load_error(dir);
    EXPECT_NE(message.find(kQ1 + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("weight_scale_2 = nan"), std::string::npos) << message;
}

TEST_F(Nvfp4Load, NanInTheBlockScalesIsRefusedNamingTheModule) {
    const std::string dir = make(kCt, "m");
    const std::string module = "model.layers.2.block_sparse_moe.experts.7.w2";
    rewrite(dir, [&](TensorPlan& plan, std::vector<uint8_t>& bytes) {
        if (plan.name == module + ".weight_scale") bytes[100] = 0x7f;
        return true;
    });
    const std::string message = load_error(dir);
    EXPECT_NE(message.find(module + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("NaN"), std::string::npos) << message;
}

TEST_F(Nvfp4Load, UnequalQkvGlobalScalesAreRefused) {
    const std::string dir = make(kCt, "m");
    Checkpoint checkpoint = Checkpoint::open(dir);
    float stored;
    std::memcpy(&stored, checkpoint.tensor(kK1 + ".weight_global_scale").raw(), sizeof(stored));
    set_scalar(dir, kK1 + ".weight_global_scale", stored * 2.0f);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find(kK1 + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("fused group model.layers.1.self_attn.qkv_proj"), std::string::npos)
        << message;
    EXPECT_NE(message.find(kQ1), std::string::npos) << "names the other member: " << message;
}

TEST_F(Nvfp4Load, UnequalExpertW1W3GlobalScalesAreRefused) {
    const std::string dir = make(kMo, "m");
    const std::string w3 = "model.layers.2.block_sparse_moe.experts.4.w3";
    set_scalar(dir, w3 + ".weight_scale_2", 1e-3f);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find(w3 + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("experts.4.w13"), std::string::npos) << message;
}

TEST_F(Nvfp4Load, MissingTensorIsRefused) {
    const std::string dir = make(kCt, "m");
    const std::string gone = kQ1 + ".weight_scale";
    rewrite(dir, [&](TensorPlan& plan, std::vector<uint8_t>&) { return plan.name != gone; });
    const std::string message = load_error(dir);
    EXPECT_NE(message.find(kQ1 + ":"), std::string::npos) << message;
    EXPECT_NE(message.find(gone + " is missing"), std::string::npos) << message;
}

TEST_F(Nvfp4Load, WrongDtypeAndShapeAreRefused) {
    const std::string dir = make(kMo, "m");
    rewrite(dir, [&](TensorPlan& plan, std::vector<uint8_t>&) {
        if (plan.name == kQ1 + ".weight_scale") plan.dtype = DType::u8;
        return true;
    });
    std::string message = load_error(dir);
    EXPECT_NE(message.find("weight_scale has dtype U8, expected F8_E4M3"), std::string::npos)
        << message;

    const std::string dir2 = make(kCt, "m2");
    rewrite(dir2, [&](TensorPlan& plan, std::vector<uint8_t>&) {
        if (plan.name == kK1 + ".weight_packed")
            plan.shape = {plan.shape[0] * 2, plan.shape[1] / 2};
        return true;
    });
    message = load_error(dir2);
    EXPECT_NE(message.find(kK1 + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("shape [256, 64], expected [128, 128]"), std::string::npos) << message;
}

TEST_F(Nvfp4Load, ModuleNeitherQuantizedNorIgnoredIsRefused) {
    // Drop layer 0 from the ignore list: its BF16 modules are then neither.
    const std::string dir = make(kCt, "m");
    json config = read_json_file(dir + "/config.json");
    json& ignore = config["quantization_config"]["ignore"];
    ignore.erase(std::find(ignore.begin(), ignore.end(), "re:model\\.layers\\.0\\."));
    write_json_file(dir + "/config.json", config);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find("model.layers.0.self_attn.q_proj: is BF16 but neither quantized nor "
                           "matched by the ignore list"),
              std::string::npos)
        << message;
}

TEST_F(Nvfp4Load, QuantizedModuleOnTheIgnoreListIsRefused) {
    const std::string dir = make(kMo, "m");
    json hf = read_json_file(dir + "/hf_quant_config.json");
    hf["quantization"]["exclude_modules"].push_back("*experts.9.w2");
    write_json_file(dir + "/hf_quant_config.json", hf);
    const std::string message = load_error(dir);
    EXPECT_NE(message.find("model.layers.1.block_sparse_moe.experts.9.w2: is stored as NVFP4"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("*experts.9.w2"), std::string::npos) << message;
}

TEST_F(Nvfp4Load, InspectListsEveryAnomaly) {
    const std::string dir = make(kMo, "m");
    EXPECT_TRUE(inspect_checkpoint(dir).clean());
    const std::string w1 = "model.layers.2.block_sparse_moe.experts.1.w1";
    rewrite(dir, [&](TensorPlan& plan, std::vector<uint8_t>& bytes) {
        const float nan = std::nanf("");
        if (plan.name == kQ1 + ".weight_scale_2") std::memcpy(bytes.data(), &nan, 4);
        if (plan.name == w1 + ".weight_scale") bytes[0] = 0xff;
        if (plan.name == "model.layers.2.self_attn.o_proj.input_scale") return false;
        return true;
    });
    // A tensor the model does not read.
    rewrite(dir, [](TensorPlan&, std::vector<uint8_t>&) { return true; },
            {"model.layers.1.self_attn.k_proj.k_scale"});
    CheckpointReport report = inspect_checkpoint(dir);
    std::map<std::string, std::string> kind_of;
    for (const CheckpointProblem& anomaly : report.anomalies)
        kind_of[anomaly.subject] = anomaly.kind;
    EXPECT_EQ(kind_of[kQ1], "scale");
    EXPECT_EQ(kind_of[w1], "scale");
    EXPECT_EQ(kind_of["model.layers.2.self_attn.o_proj"], "missing_input_scale");
    EXPECT_EQ(kind_of["model.layers.1.self_attn.k_proj.k_scale"], "unused_tensor");
    EXPECT_EQ(report.anomalies.size(), 4u);
    EXPECT_EQ(report.kinds.at("nvfp4").n_modules, 2u * (4 + 16 * 3));
    EXPECT_EQ(report.kinds.at("bf16").n_modules, 2u * (4 + 1 + 16 * 3) + 2 * 1 + 1);
}

// The export scale: ModelOpt's amax / 2688, moved up to a float whose reciprocal round-trips.
// The BF16 amax 0x3c03 (0.00799561) gives an amax / 2688 that does not survive 1/(1/x).
TEST(Nvfp4ExportScale, IsModelOptsScaleNudgedToSurviveTheReciprocal) {
    const float amax = bf16_to_f32(0x3c03);
    const float plain = amax / 2688.0f;
    ASSERT_NE(1.0f / (1.0f / plain), plain) << "the example must need the nudge";
    const float scale = nvfp4_export_global_scale(amax);
    EXPECT_GT(scale, plain);
    EXPECT_EQ(1.0f / (1.0f / scale), scale);
    EXPECT_LE(scale, std::nextafter(std::nextafter(std::nextafter(plain, 1.0f), 1.0f), 1.0f))
        << "within a few ulps";
    // Scales that already round-trip are ModelOpt's exactly (bit-exactness is kept there).
    EXPECT_EQ(nvfp4_export_global_scale(8.0f), 8.0f / 2688.0f);
    EXPECT_EQ(nvfp4_export_global_scale(0.0f), 1.0f) << "an all-zero tensor";
}

// make-model's NVFP4 checkpoint is the quantization of its BF16 checkpoint of the same seed:
// every global scale is the export scale of the fused group's amax taken from the BF16 weights,
// and every code and block scale is what the codec gives for those weights and that scale
// (which also checks make-model's row-parallel quantization against one whole-matrix call).
TEST_F(Nvfp4Load, MakeModelQuantizesTheBf16ModelOfTheSameSeed) {
    const std::string bf16 = make(QuantizationFormat::none, "bf16");
    const std::string mo = make(kMo, "mo");
    Checkpoint dense = Checkpoint::open(bf16), quantized = Checkpoint::open(mo);
    const MiniMaxM2Config config = load_minimax_m2_config(bf16);
    auto values = [&](const std::string& prefix) {
        Tensor t = dense.tensor(prefix + ".weight");
        std::vector<float> out(t.numel());
        for (int64_t i = 0; i < t.numel(); ++i) out[i] = bf16_to_f32(t.data<uint16_t>()[i]);
        return out;
    };
    std::map<std::string, float> group_amax;
    const std::vector<LinearModule> modules = minimax_m2_linear_modules(config);
    for (const LinearModule& module : modules) {
        const std::string group = module.fused_group.empty() ? module.prefix : module.fused_group;
        float& amax = group_amax[group];
        for (float v : values(module.prefix)) amax = std::max(amax, std::fabs(v));
    }
    size_t n_checked = 0;
    for (const LinearModule& module : modules) {
        if (quantized.contains(module.prefix + ".weight") &&
            quantized.entry(module.prefix + ".weight").dtype == DType::bf16) {
            continue;
        }
        const std::string group = module.fused_group.empty() ? module.prefix : module.fused_group;
        const float scale = nvfp4_export_global_scale(group_amax.at(group));
        float stored;
        std::memcpy(&stored, quantized.tensor(module.prefix + ".weight_scale_2").raw(), 4);
        ASSERT_EQ(stored, scale) << module.prefix;
        NvFp4Matrix expected =
            quantize_nvfp4(values(module.prefix), module.rows, module.cols, scale, module.prefix);
        Tensor packed = quantized.tensor(module.prefix + ".weight");
        Tensor block_scales = quantized.tensor(module.prefix + ".weight_scale");
        ASSERT_TRUE(
            std::equal(expected.packed.begin(), expected.packed.end(), packed.data<uint8_t>()))
            << module.prefix;
        ASSERT_TRUE(std::equal(expected.block_scales.begin(), expected.block_scales.end(),
                               block_scales.data<uint8_t>()))
            << module.prefix;
        ++n_checked;
    }
    EXPECT_EQ(n_checked, 2u * (4 + 48));
}

}  // namespace
}  // namespace fourbit
