// One NVFP4 module on disk in either layout: names, reciprocal scales, and every check of the
// reader, each of which must name the module (a NaN scale in a published checkpoint is the case
// this exists for).
#include "formats/nvfp4_tensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "support/temp_dir.h"
#include "util/error.h"

namespace fourbit {
namespace {

namespace fs = std::filesystem;
constexpr QuantizationFormat kCt = QuantizationFormat::nvfp4_compressed_tensors;
constexpr QuantizationFormat kMo = QuantizationFormat::nvfp4_modelopt;
const std::string kModule = "model.layers.1.self_attn.q_proj";

// A module of 4 x 32 weights as tensors in memory, to be corrupted one way or another.
struct ModuleTensors {
    std::vector<NamedTensor> tensors;

    Tensor& get(const std::string& name) {
        for (NamedTensor& t : tensors) {
            if (t.name == name) return t.tensor;
        }
        ADD_FAILURE() << "no tensor " << name;
        return tensors.front().tensor;
    }
    void erase(const std::string& name) {
        std::erase_if(tensors, [&](const NamedTensor& t) { return t.name == name; });
    }
};

Tensor scalar(QuantizationFormat format, float value) {
    Tensor t = Tensor::zeros(DType::f32, format == kCt ? Shape{1} : Shape{});
    std::memcpy(t.data<float>(), &value, sizeof(value));
    return t;
}

// The same bytes under another dtype or shape, in a tensor of its own.
Tensor retyped(const Tensor& tensor, DType dtype, Shape shape) {
    Tensor out = Tensor::zeros(dtype, std::move(shape));
    EXPECT_EQ(out.size_bytes(), tensor.size_bytes());
    std::memcpy(out.data<uint8_t>(), tensor.raw(), std::min(out.size_bytes(), tensor.size_bytes()));
    return out;
}

ModuleTensors make_module(QuantizationFormat format, int64_t rows = 4, int64_t cols = 32) {
    const NvFp4TensorNames names = nvfp4_tensor_names(format, kModule);
    Tensor packed = Tensor::zeros(DType::u8, {rows, cols / 2});
    Tensor scales = Tensor::zeros(DType::f8_e4m3, {rows, cols / 16});
    for (int64_t i = 0; i < packed.numel(); ++i) packed.data<uint8_t>()[i] = uint8_t(i * 37);
    for (int64_t i = 0; i < scales.numel(); ++i) scales.data<uint8_t>()[i] = 0x38;  // 1.0
    // Global 0.5 and input 0.25 in the dequantize direction; CT stores 2 and 4.
    return {{{names.packed, packed},
             {names.block_scale, scales},
             {names.global_scale, scalar(format, stored_scale(format, 0.5f))},
             {names.input_scale, scalar(format, stored_scale(format, 0.25f))}}};
}

class Nvfp4Tensors : public test_support::TempDirTest {
protected:
    // Writes the tensors as a checkpoint and reads the module back, collecting problems.
    std::optional<NvFp4Linear> read(QuantizationFormat format, const ModuleTensors& module,
                                    int64_t rows = 4, int64_t cols = 32) {
        write_safetensors((dir_ / "model.safetensors").string(), module.tensors);
        checkpoint_ = std::make_unique<Checkpoint>(Checkpoint::open(dir_.string()));
        problems_.clear();
        return read_nvfp4_linear(*checkpoint_, format, kModule, rows, cols,
                                 [this](CheckpointProblem p) { problems_.push_back(p); });
    }

    // Exactly one problem of `kind`, about the module, mentioning `needle`.
    void expect_problem(const std::string& kind, const std::string& needle) {
        ASSERT_EQ(problems_.size(), 1u);
        EXPECT_EQ(problems_[0].kind, kind) << problems_[0].message;
        EXPECT_EQ(problems_[0].subject, kModule);
        EXPECT_NE(problems_[0].message.find(needle), std::string::npos) << problems_[0].message;
    }

    std::unique_ptr<Checkpoint> checkpoint_;
    std::vector<CheckpointProblem> problems_;
};

TEST(Nvfp4Names, BothLayouts) {
    NvFp4TensorNames ct = nvfp4_tensor_names(kCt, "p");
    EXPECT_EQ(ct.packed, "p.weight_packed");
    EXPECT_EQ(ct.block_scale, "p.weight_scale");
    EXPECT_EQ(ct.global_scale, "p.weight_global_scale");
    EXPECT_EQ(ct.input_scale, "p.input_global_scale");
    NvFp4TensorNames mo = nvfp4_tensor_names(kMo, "p");
    EXPECT_EQ(mo.packed, "p.weight");
    EXPECT_EQ(mo.block_scale, "p.weight_scale");
    EXPECT_EQ(mo.global_scale, "p.weight_scale_2");
    EXPECT_EQ(mo.input_scale, "p.input_scale");
    EXPECT_EQ(nvfp4_tensor_shape(kMo, NvFp4Role::global_scale, 4, 32), Shape{});
    EXPECT_EQ(nvfp4_tensor_shape(kCt, NvFp4Role::input_scale, 4, 32), Shape{1});
    EXPECT_EQ(nvfp4_tensor_shape(kCt, NvFp4Role::block_scale, 4, 32), (Shape{4, 2}));
    for (QuantizationFormat format : {kCt, kMo}) {
        NvFp4TensorNames names = nvfp4_tensor_names(format, kModule);
        for (NvFp4Role role : {NvFp4Role::packed, NvFp4Role::block_scale, NvFp4Role::global_scale,
                               NvFp4Role::input_scale}) {
            auto parsed = parse_nvfp4_tensor_name(format, names.of(role));
            ASSERT_TRUE(parsed) << names.of(role);
            EXPECT_EQ(parsed->first, kModule);
            EXPECT_EQ(parsed->second, role) << names.of(role);
        }
    }
    EXPECT_FALSE(parse_nvfp4_tensor_name(kCt, "model.norm.weight"));
}

TEST(Nvfp4Scales, ReciprocalRoundTripAndTheNudge) {
    // Some floats do not survive 1/(1/x): find a few, and check the nudge fixes each within a
    // few ulps, upward (a larger global scale keeps block scales within E4M3's 448).
    int n_failing = 0;
    for (float x = 1e-3f; x < 1e-2f && n_failing < 50; x = std::nextafter(x, 1.0f) + 3e-9f) {
        if (reciprocal_round_trips(x)) continue;
        ++n_failing;
        const float nudged = reciprocal_stable_scale(x);
        EXPECT_GT(nudged, x);
        EXPECT_TRUE(reciprocal_round_trips(nudged));
        EXPECT_EQ(1.0f / (1.0f / nudged), nudged);
        EXPECT_LT(nudged, x * (1.0f + 1e-5f)) << "more than a few ulps";
    }
    EXPECT_EQ(n_failing, 50) << "expected floats whose reciprocal does not round-trip";
    EXPECT_TRUE(reciprocal_round_trips(0.5f));
    EXPECT_EQ(reciprocal_stable_scale(0.5f), 0.5f);
    EXPECT_EQ(stored_scale(kCt, 0.5f), 2.0f);
    EXPECT_EQ(stored_scale(kMo, 0.5f), 0.5f);
    EXPECT_EQ(dequantize_scale(kCt, 2688.0f / 8.0f), 1.0f / (2688.0f / 8.0f));
}

TEST_F(Nvfp4Tensors, ReadsBothLayoutsInTheDequantizeDirection) {
    for (QuantizationFormat format : {kCt, kMo}) {
        std::optional<NvFp4Linear> linear = read(format, make_module(format));
        ASSERT_TRUE(linear) << quantization_format_name(format);
        EXPECT_TRUE(problems_.empty());
        EXPECT_EQ(linear->global_scale, 0.5f);
        EXPECT_EQ(linear->input_scale, std::optional<float>(0.25f));
        EXPECT_EQ(linear->stored_global_scale, format == kCt ? 2.0f : 0.5f);
        EXPECT_EQ(linear->packed.shape(), (Shape{4, 16}));
        EXPECT_EQ(linear->block_scale.dtype(), DType::f8_e4m3);
        EXPECT_EQ(linear_storage(*checkpoint_, format, kModule), LinearStorage::nvfp4);
    }
}

TEST_F(Nvfp4Tensors, InputScaleIsOptional) {
    ModuleTensors module = make_module(kMo);
    module.erase(kModule + ".input_scale");
    std::optional<NvFp4Linear> linear = read(kMo, module);
    ASSERT_TRUE(linear);
    EXPECT_FALSE(linear->input_scale);
}

TEST_F(Nvfp4Tensors, NanGlobalScaleNamesTheModule) {
    ModuleTensors module = make_module(kMo);
    module.get(kModule + ".weight_scale_2").data<float>()[0] = std::nanf("");
    EXPECT_FALSE(read(kMo, module));
    expect_problem("scale", "weight_scale_2 = nan");
}

TEST_F(Nvfp4Tensors, ZeroNegativeOrInfiniteGlobalAndInputScalesAreRefused) {
    for (float bad : {0.0f, -0.5f, std::numeric_limits<float>::infinity(), 1e-45f}) {
        ModuleTensors module = make_module(kCt);
        module.get(kModule + ".input_global_scale").data<float>()[0] = bad;
        EXPECT_FALSE(read(kCt, module)) << bad;
        // 1e-45 is positive and finite, but its reciprocal is not.
        expect_problem("scale", "input_global_scale");
    }
}

TEST_F(Nvfp4Tensors, NanInTheBlockScalesNamesTheModuleAndWhere) {
    ModuleTensors module = make_module(kCt);
    module.get(kModule + ".weight_scale").data<uint8_t>()[5] = 0x7f;  // row 2, block 1
    module.get(kModule + ".weight_scale").data<uint8_t>()[6] = 0xff;
    EXPECT_FALSE(read(kCt, module));
    expect_problem("scale", "2 NaN and 0 negative block scales (first at [2, 1])");

    module = make_module(kCt);
    module.get(kModule + ".weight_scale").data<uint8_t>()[0] = 0xb8;  // -1.0
    EXPECT_FALSE(read(kCt, module));
    expect_problem("scale", "0 NaN and 1 negative");
}

TEST_F(Nvfp4Tensors, MissingTensorsAreEachReported) {
    ModuleTensors module = make_module(kCt);
    module.erase(kModule + ".weight_global_scale");
    EXPECT_FALSE(read(kCt, module));
    expect_problem("missing_tensor", kModule + ".weight_global_scale");

    module = make_module(kMo);
    module.erase(kModule + ".weight");
    EXPECT_FALSE(read(kMo, module));
    expect_problem("missing_tensor", kModule + ".weight");
    // Scales without codes are still an NVFP4 module, missing its weights.
    EXPECT_EQ(linear_storage(*checkpoint_, kMo, kModule), LinearStorage::nvfp4);
}

TEST_F(Nvfp4Tensors, WrongDtypeOrShapeIsRefused) {
    ModuleTensors module = make_module(kMo);
    Tensor& scales = module.get(kModule + ".weight_scale");
    scales = retyped(scales, DType::u8, scales.shape());
    EXPECT_FALSE(read(kMo, module));
    expect_problem("dtype", "weight_scale has dtype U8, expected F8_E4M3");

    module = make_module(kCt);
    Tensor& packed = module.get(kModule + ".weight_packed");
    packed = retyped(packed, DType::u8, {2, 32});
    EXPECT_FALSE(read(kCt, module));
    expect_problem("shape", "weight_packed has shape [2, 32], expected [4, 16]");

    module = make_module(kCt);
    Tensor& global = module.get(kModule + ".weight_global_scale");
    global = Tensor::zeros(DType::f32, {2});
    EXPECT_FALSE(read(kCt, module));
    expect_problem("shape", "weight_global_scale has shape [2]");
}

TEST_F(Nvfp4Tensors, KMustBeAMultipleOf16) {
    ModuleTensors module = make_module(kMo, 4, 32);
    EXPECT_FALSE(read(kMo, module, 4, 24));
    ASSERT_FALSE(problems_.empty());
    EXPECT_EQ(problems_[0].kind, "k_not_multiple_of_16");
    EXPECT_NE(problems_[0].message.find("K = 24"), std::string::npos);
}

TEST_F(Nvfp4Tensors, AllProblemsOfAModuleAreReported) {
    ModuleTensors module = make_module(kMo);
    module.get(kModule + ".weight_scale_2").data<float>()[0] = std::nanf("");
    module.get(kModule + ".weight_scale").data<uint8_t>()[0] = 0x7f;
    module.erase(kModule + ".weight");
    EXPECT_FALSE(read(kMo, module));
    EXPECT_EQ(problems_.size(), 3u);
}

TEST_F(Nvfp4Tensors, StorageOfDenseAndMissingModules) {
    std::vector<NamedTensor> tensors = {{kModule + ".weight", Tensor::zeros(DType::bf16, {4, 32})}};
    write_safetensors((dir_ / "model.safetensors").string(), tensors);
    Checkpoint checkpoint = Checkpoint::open(dir_.string());
    EXPECT_EQ(linear_storage(checkpoint, kMo, kModule), LinearStorage::dense);
    EXPECT_EQ(linear_storage(checkpoint, kCt, kModule), LinearStorage::dense);
    EXPECT_EQ(linear_storage(checkpoint, kCt, "lm_head"), LinearStorage::missing);
}

}  // namespace
}  // namespace fourbit
