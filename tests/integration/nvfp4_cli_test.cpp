// NVFP4 checkpoints through the real binary: `make-model --quant nvfp4` in both layouts,
// `logits` (identical across layouts, and equal to a dequantized F32 twin within f32 rounding),
// `inspect` on clean and corrupted checkpoints, and `convert` round trips byte for byte.
//
// The twin is written here from the ModelOpt checkpoint's raw tensors with a decoder of its own
// (the E2M1 table, E4M3 block scales, weight_scale_2), so the engine's NVFP4 path is compared
// with its dense f32 path on the same numbers. Bound: the two paths sum the same products in a
// different order and apply the scales at different points: f32 rounding, measured 1.4e-6 on
// these logits (magnitude ~5). 2e-5 leaves room for other kernel sets (AVX2, AVX-512) yet is
// far below the effect of one wrong code, scale or nibble; NVFP4 and BF16 logits of the same
// seed differ by more than 100 times the bound (checked below).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "formats/checkpoint.h"
#include "integration/cli_helpers.h"
#include "tensor/numeric.h"

namespace fourbit::cli_test {
namespace {

constexpr float kTwinBound = 2e-5f;
const std::string kIds = "5,17,3,100,2000,4095,0";
const std::string kQ1 = "model.layers.1.self_attn.q_proj";

class Nvfp4Cli : public CliTest {
protected:
    // make-model --preset tiny --seed 1 --quant nvfp4 [--format F] into the test's directory.
    fs::path make(const std::string& name, const std::string& format) {
        const fs::path dir = temp_->path() / name;
        std::vector<std::string> args = {"make-model", "--preset", "tiny",  "--seed",    "1",
                                         "--quant",    "nvfp4",    "--out", dir.string()};
        if (!format.empty()) {
            args.push_back("--format");
            args.push_back(format);
        }
        CommandResult made = run_fourbit(args);
        EXPECT_TRUE(succeeded(made));
        return dir;
    }

    LogitsFile logits(const fs::path& model, const std::string& name) {
        const fs::path out = temp_->path() / (name + ".safetensors");
        CommandResult result = run_fourbit(
            {"logits", "--model", model.string(), "--ids", kIds, "--out", out.string()});
        EXPECT_TRUE(succeeded(result));
        return read_logits(out);
    }

    CommandResult convert(const fs::path& from, const fs::path& to, const std::string& format) {
        return run_fourbit(
            {"convert", "--model", from.string(), "--out", to.string(), "--format", format});
    }
};

// Overwrites bytes of a tensor in its shard, in place.
void poke(const fs::path& dir, const std::string& tensor, uint64_t offset, const void* bytes,
          size_t n) {
    const fs::path shard = shard_of(dir, tensor);
    uint64_t begin = 0;
    {
        auto file = SafetensorsFile::open(shard.string());
        ASSERT_NE(file->find(tensor), nullptr) << tensor;
        begin = file->find(tensor)->begin_bytes;
    }
    std::string data = read_file(shard);
    const uint64_t at = 8 + header_length(data) + begin + offset;
    ASSERT_LE(at + n, data.size());
    std::memcpy(data.data() + at, bytes, n);
    write_file(shard, data);
}

void poke_f32(const fs::path& dir, const std::string& tensor, float value) {
    poke(dir, tensor, 0, &value, sizeof(value));
}

float read_f32(const fs::path& dir, const std::string& tensor) {
    Checkpoint checkpoint = Checkpoint::open(dir.string());
    float value;
    std::memcpy(&value, checkpoint.tensor(tensor).raw(), sizeof(value));
    return value;
}

std::string tensor_bytes(const Checkpoint& checkpoint, const std::string& name) {
    Tensor tensor = checkpoint.tensor(name);
    return std::string(static_cast<const char*>(tensor.raw()), tensor.size_bytes());
}

// Every tensor of `a` is in `b` with the same dtype, shape and bytes, and nothing else is.
void expect_same_tensors(const fs::path& a, const fs::path& b) {
    Checkpoint ca = Checkpoint::open(a.string()), cb = Checkpoint::open(b.string());
    ASSERT_EQ(ca.tensor_names(), cb.tensor_names()) << a << " vs " << b;
    for (const std::string& name : ca.tensor_names()) {
        EXPECT_EQ(ca.entry(name).dtype, cb.entry(name).dtype) << name;
        EXPECT_EQ(ca.entry(name).shape, cb.entry(name).shape) << name;
        EXPECT_TRUE(tensor_bytes(ca, name) == tensor_bytes(cb, name)) << name;
    }
}

// The F32 twin of a ModelOpt NVFP4 checkpoint: each module's `weight` replaced by the values
// its codes stand for, decoded here from the raw tensors.
void write_dequantized_twin(const fs::path& modelopt, const fs::path& twin) {
    static constexpr float kE2M1[16] = {0,     0.5f,  1,  1.5f,  2,  3,  4,  6,
                                        -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    Checkpoint checkpoint = Checkpoint::open(modelopt.string());
    std::vector<TensorPlan> plan;
    for (const std::string& name : checkpoint.tensor_names()) {
        const SafetensorsEntry& entry = checkpoint.entry(name);
        if (entry.dtype == DType::u8) {
            plan.push_back({name, DType::f32, {entry.shape[0], entry.shape[1] * 2}});
        } else if (!name.ends_with(".weight_scale") && !name.ends_with(".weight_scale_2") &&
                   !name.ends_with(".input_scale")) {
            plan.push_back({name, entry.dtype, entry.shape});
        }
    }
    write_sharded_checkpoint(
        twin.string(), plan,
        [&](const TensorPlan& tensor, std::span<uint8_t> out) {
            if (tensor.dtype != DType::f32) {
                std::memcpy(out.data(), checkpoint.tensor(tensor.name).raw(), out.size());
                return;
            }
            const std::string prefix = tensor.name.substr(0, tensor.name.size() - 7);  // .weight
            const Tensor packed = checkpoint.tensor(tensor.name);
            const Tensor scales = checkpoint.tensor(prefix + ".weight_scale");
            float global;
            std::memcpy(&global, checkpoint.tensor(prefix + ".weight_scale_2").raw(), 4);
            const int64_t cols = tensor.shape[1];
            auto* values = reinterpret_cast<float*>(out.data());
            for (int64_t r = 0; r < tensor.shape[0]; ++r) {
                for (int64_t c = 0; c < cols; ++c) {
                    const uint8_t byte = packed.data<uint8_t>()[(r * cols + c) / 2];
                    const uint8_t code = c % 2 == 0 ? byte & 0xf : byte >> 4;
                    const float scale =
                        f8_e4m3_to_f32(scales.data<uint8_t>()[r * cols / 16 + c / 16]);
                    values[r * cols + c] = kE2M1[code] * scale * global;
                }
            }
        },
        1ull << 40);
    nlohmann::json config = read_json(modelopt / "config.json");
    config.erase("quantization_config");
    write_json(twin / "config.json", config);
}

float max_abs_difference(const LogitsFile& a, const LogitsFile& b) {
    EXPECT_EQ(a.values.size(), b.values.size());
    float largest = 0;
    for (size_t i = 0; i < a.values.size() && i < b.values.size(); ++i) {
        largest = std::max(largest, std::fabs(a.values[i] - b.values[i]));
    }
    return largest;
}

TEST_F(Nvfp4Cli, BothLayoutsGiveIdenticalLogits) {
    const fs::path ct = make("ct", "");  // compressed-tensors is the default
    const fs::path mo = make("mo", "modelopt");
    EXPECT_TRUE(fs::exists(mo / "hf_quant_config.json"));
    EXPECT_FALSE(fs::exists(ct / "hf_quant_config.json"));
    EXPECT_EQ(read_json(ct / "config.json")["quantization_config"]["format"],
              "nvfp4-pack-quantized");
    LogitsFile from_ct = logits(ct, "ct");
    LogitsFile from_mo = logits(mo, "mo");
    ASSERT_EQ(from_ct.rows, 7);
    EXPECT_EQ(from_ct.values, from_mo.values) << "the same numbers in two layouts";
}

TEST_F(Nvfp4Cli, LogitsEqualTheDequantizedTwinWithinF32Rounding) {
    const fs::path mo = make("mo", "modelopt");
    const fs::path twin = temp_->path() / "twin";
    write_dequantized_twin(mo, twin);
    LogitsFile quantized = logits(mo, "nvfp4");
    LogitsFile dense = logits(twin, "twin");
    EXPECT_LE(max_abs_difference(quantized, dense), kTwinBound);
    // And quantization did something: the BF16 model of the same seed differs by far more.
    LogitsFile bf16 = logits(tiny_dir(), "bf16");
    const float quantization_effect = max_abs_difference(quantized, bf16);
    EXPECT_GT(quantization_effect, 100 * kTwinBound);
    RecordProperty("twin_difference", std::to_string(max_abs_difference(quantized, dense)));
    RecordProperty("quantization_effect", std::to_string(quantization_effect));
}

TEST_F(Nvfp4Cli, W4a4EmulationChangesLogitsALittleAndAlikeInBothLayouts) {
    const fs::path ct = make("ct", "");
    const fs::path mo = make("mo", "modelopt");
    auto emulated = [&](const fs::path& model, const std::string& name) {
        const fs::path out = temp_->path() / (name + ".safetensors");
        EXPECT_TRUE(succeeded(run_fourbit({"logits", "--model", model.string(), "--ids", kIds,
                                           "--out", out.string(), "--emulate-w4a4"})));
        return read_logits(out);
    };
    LogitsFile w4a4 = emulated(ct, "ct_w4a4");
    LogitsFile w4a16 = logits(ct, "ct");
    EXPECT_EQ(w4a4.values, emulated(mo, "mo_w4a4").values);
    const float difference = max_abs_difference(w4a4, w4a16);
    EXPECT_GT(difference, 100 * kTwinBound) << "activation quantization had no effect";
    EXPECT_LT(difference, 2.0f) << "activation quantization wrecked the logits";
}

TEST_F(Nvfp4Cli, InspectCleanCheckpoint) {
    const fs::path ct = make("ct", "");
    CommandResult text = run_fourbit({"inspect", ct.string()});
    ASSERT_TRUE(succeeded(text));
    EXPECT_NE(text.out.find("compressed-tensors"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("anomalies: none"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("re:.*block_sparse_moe\\.gate$"), std::string::npos) << text.out;

    CommandResult json_result = run_fourbit({"inspect", ct.string(), "--json"});
    ASSERT_TRUE(succeeded(json_result));
    nlohmann::json report = nlohmann::json::parse(json_result.out);
    EXPECT_EQ(report["clean"], true);
    EXPECT_EQ(report["format"], "compressed-tensors");
    EXPECT_EQ(report["input_scales"], true);
    EXPECT_EQ(report["ignore"], read_json(ct / "config.json")["quantization_config"]["ignore"]);
    EXPECT_EQ(report["architecture"]["num_hidden_layers"], 4);
    // Layers 1-2: 4 attention + 48 expert matrices each; the rest BF16.
    EXPECT_EQ(report["modules"]["nvfp4"]["modules"], 2 * (4 + 48));
    EXPECT_EQ(report["modules"]["bf16"]["modules"], 2 * (4 + 1 + 48) + 2 + 1);
    EXPECT_EQ(report["layers"][1]["experts"], nlohmann::json({{"nvfp4", 48}}));
    EXPECT_EQ(report["layers"][1]["router"], nlohmann::json({{"bf16", 1}}));
    EXPECT_EQ(report["layers"][3]["attention"], nlohmann::json({{"bf16", 4}}));
    // Per NVFP4 layer: q 512x256, k and v 128x256, o 256x512, 48 experts 128x256, at 9/16 byte
    // a weight plus two f32 scalars per module.
    const uint64_t weights_per_layer = 512 * 256 + 2 * 128 * 256 + 256 * 512 + 48 * 128 * 256;
    EXPECT_EQ(report["modules"]["nvfp4"]["bytes_on_disk"],
              2 * (weights_per_layer / 16 * 9 + 52 * 8));
    EXPECT_EQ(report["modules"]["nvfp4"]["bytes_in_memory"], 2 * weights_per_layer / 16 * 9);
    EXPECT_EQ(report["anomalies"], nlohmann::json::array());
}

TEST_F(Nvfp4Cli, InspectAndLoadRefuseANanScaleNamingTheModule) {
    const fs::path mo = make("mo", "modelopt");
    const fs::path ct = make("ct", "");
    const std::string expert = "model.layers.2.block_sparse_moe.experts.3.w2";
    poke_f32(mo, kQ1 + ".weight_scale_2", std::numeric_limits<float>::quiet_NaN());
    const uint8_t nan_code = 0x7f;
    poke(ct, expert + ".weight_scale", 17, &nan_code, 1);
    // And a second anomaly in the same checkpoint: inspect lists both.
    poke_f32(ct, kQ1 + ".weight_global_scale", 0.0f);

    for (const auto& [dir, modules] : std::vector<std::pair<fs::path, std::vector<std::string>>>{
             {mo, {kQ1}}, {ct, {expert, kQ1}}}) {
        CommandResult text = run_fourbit({"inspect", dir.string()});
        EXPECT_TRUE(text.exited && text.exit_code == 1) << text.describe();
        CommandResult json_result = run_fourbit({"inspect", dir.string(), "--json"});
        EXPECT_TRUE(json_result.exited && json_result.exit_code == 1) << json_result.describe();
        nlohmann::json report = nlohmann::json::parse(json_result.out);
        EXPECT_EQ(report["clean"], false);
        std::set<std::string> subjects;
        for (const auto& anomaly : report["anomalies"]) subjects.insert(anomaly["subject"]);
        for (const std::string& module : modules) {
            EXPECT_NE(text.out.find(module), std::string::npos) << text.out;
            EXPECT_TRUE(subjects.contains(module)) << json_result.out;
        }
        EXPECT_EQ(report["anomalies"].size(), modules.size()) << json_result.out;
        // The loader refuses the first, naming it and the directory.
        CommandResult load = run_fourbit(
            {"logits", "--model", dir.string(), "--ids", "1,2", "--out", *temp_ / "x.safetensors"});
        EXPECT_TRUE(failed_cleanly(load, {dir.string(), modules.back()}));
    }
    CommandResult text = run_fourbit({"inspect", mo.string()});
    EXPECT_NE(text.out.find("weight_scale_2 = nan"), std::string::npos) << text.out;
}

TEST_F(Nvfp4Cli, AllLayersOptionQuantizesTheEdgeLayersToo) {
    const fs::path dir = temp_->path() / "all";
    ASSERT_TRUE(succeeded(run_fourbit({"make-model", "--preset", "tiny", "--seed", "1", "--quant",
                                       "nvfp4", "--nvfp4-layers", "all", "--out", dir.string()})));
    CommandResult json_result = run_fourbit({"inspect", dir.string(), "--json"});
    ASSERT_TRUE(succeeded(json_result));
    nlohmann::json report = nlohmann::json::parse(json_result.out);
    EXPECT_EQ(report["clean"], true);
    // Every layer's attention and experts; lm_head, embeddings and routers stay BF16.
    EXPECT_EQ(report["modules"]["nvfp4"]["modules"], 4 * (4 + 48));
    EXPECT_EQ(report["layers"][0]["attention"], nlohmann::json({{"nvfp4", 4}}));
    EXPECT_EQ(report["layers"][3]["router"], nlohmann::json({{"bf16", 1}}));
    EXPECT_EQ(logits(dir, "all").rows, 7);
}

TEST_F(Nvfp4Cli, InspectOfTheBf16ModelIsClean) {
    CommandResult result = run_fourbit({"inspect", tiny_dir().string(), "--json"});
    ASSERT_TRUE(succeeded(result));
    nlohmann::json report = nlohmann::json::parse(result.out);
    EXPECT_EQ(report["format"], "bf16");
    EXPECT_EQ(report["modules"]["bf16"]["modules"], 4 * (4 + 1 + 48) + 1);
    EXPECT_FALSE(report["modules"].contains("nvfp4"));
}

TEST_F(Nvfp4Cli, ConvertRoundTripsAreByteIdentical) {
    const fs::path ct = make("ct", "");
    const fs::path mo = make("mo", "modelopt");
    const fs::path ct_mo = temp_->path() / "ct_mo", ct_mo_ct = temp_->path() / "ct_mo_ct";
    const fs::path mo_ct = temp_->path() / "mo_ct", mo_ct_mo = temp_->path() / "mo_ct_mo";
    ASSERT_TRUE(succeeded(convert(ct, ct_mo, "modelopt")));
    ASSERT_TRUE(succeeded(convert(ct_mo, ct_mo_ct, "compressed-tensors")));
    ASSERT_TRUE(succeeded(convert(mo, mo_ct, "compressed-tensors")));
    ASSERT_TRUE(succeeded(convert(mo_ct, mo_ct_mo, "modelopt")));

    // Round trips: every tensor, and (our own writer, same shards) every file byte.
    expect_same_tensors(ct, ct_mo_ct);
    expect_same_tensors(mo, mo_ct_mo);
    for (const auto& [a, b] : {std::pair{ct, ct_mo_ct}, std::pair{mo, mo_ct_mo}}) {
        std::vector<fs::path> shards_a = shard_files(a), shards_b = shard_files(b);
        ASSERT_EQ(shards_a.size(), shards_b.size());
        for (size_t i = 0; i < shards_a.size(); ++i) {
            EXPECT_TRUE(read_file(shards_a[i]) == read_file(shards_b[i])) << shards_b[i];
        }
        EXPECT_EQ(read_json(a / "config.json"), read_json(b / "config.json")) << b;
        for (const char* file :
             {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
            EXPECT_EQ(read_file(a / file), read_file(b / file)) << b / file;
        }
    }
    EXPECT_EQ(read_json(mo / "hf_quant_config.json"), read_json(mo_ct_mo / "hf_quant_config.json"));
    EXPECT_FALSE(fs::exists(ct_mo_ct / "hf_quant_config.json"));
    // One step: converting is the same as making the model in the other layout.
    expect_same_tensors(ct_mo, mo);
    expect_same_tensors(mo_ct, ct);
    EXPECT_EQ(read_json(ct_mo / "config.json"), read_json(mo / "config.json"));
    EXPECT_EQ(read_json(ct_mo / "hf_quant_config.json"), read_json(mo / "hf_quant_config.json"));
    // And the converted model runs to the same logits.
    EXPECT_EQ(logits(ct_mo, "ct_mo").values, logits(ct, "ct").values);
}

TEST_F(Nvfp4Cli, ConvertRefusesAScaleWithoutAnExactReciprocal) {
    const fs::path ct = make("ct", "");
    float stored = read_f32(ct, kQ1 + ".weight_global_scale");
    // The nearest float above whose reciprocal does not come back.
    float bad = stored;
    do {
        bad = std::nextafter(bad, std::numeric_limits<float>::infinity());
    } while (1.0f / (1.0f / bad) == bad);
    for (const char* member : {"q_proj", "k_proj", "v_proj"}) {  // keep q/k/v equal
        poke_f32(ct, std::string("model.layers.1.self_attn.") + member + ".weight_global_scale",
                 bad);
    }
    const fs::path out = temp_->path() / "out";
    // Convert names the first module it checks (q, k and v all carry the value).
    EXPECT_TRUE(failed_cleanly(convert(ct, out, "modelopt"),
                               {ct.string(), "model.layers.1.self_attn.", "weight_global_scale",
                                "not exactly representable"}));
    EXPECT_FALSE(fs::exists(out / "config.json"));
    // The checkpoint itself is fine to load: only the conversion would change it.
    EXPECT_TRUE(succeeded(run_fourbit(
        {"logits", "--model", ct.string(), "--ids", "1,2", "--out", *temp_ / "x.safetensors"})));
}

TEST_F(Nvfp4Cli, ConvertRefusesWhatItCannotConvert) {
    EXPECT_TRUE(failed_cleanly(convert(tiny_dir(), temp_->path() / "out", "modelopt"),
                               {tiny_dir().string(), "not an NVFP4 checkpoint"}));
    const fs::path ct = make("ct", "");
    EXPECT_TRUE(failed_cleanly(convert(ct, ct, "modelopt"), {"--out"}));
    EXPECT_TRUE(failed_cleanly(convert(ct, temp_->path() / "out", "gguf"), {"--format"}));
}

TEST_F(Nvfp4Cli, FormatFlagNeedsNvfp4) {
    EXPECT_TRUE(failed_cleanly(run_fourbit({"make-model", "--preset", "tiny", "--format",
                                            "modelopt", "--out", *temp_ / "m"}),
                               {"--format"}));
}

// The quantized M2.7 inventory, from the shapes of minimax_m2.md §3.3: layers 0 and 61, the
// routers, embeddings and head BF16; the 772 other linear modules of each of layers 1-60 at
// 4.5 bits a weight (9/16 byte) plus two f32 scalars.
TEST_F(Nvfp4Cli, DryRunOfM27InNvfp4) {
    CommandResult result =
        run_fourbit({"make-model", "--preset", "m2.7", "--quant", "nvfp4", "--dry-run"});
    ASSERT_TRUE(succeeded(result));
    const uint64_t attention = 44'040'192, experts = 256ull * 14'155'776;
    const uint64_t bf16_per_layer = 2 * (13'312 + 786'432 + 256);  // norms, router, bias
    const uint64_t bf16_layer = 2 * (attention + experts) + bf16_per_layer;
    const uint64_t nvfp4_layer = (attention + experts) / 16 * 9 + 772 * 8 + bf16_per_layer;
    const uint64_t head = 2 * (2ull * 614'596'608 + 3'072);
    const uint64_t expected = head + 2 * bf16_layer + 60 * nvfp4_layer;
    std::string last = result.out.substr(result.out.rfind("total "));
    EXPECT_EQ(last.substr(0, last.find(" bytes")), "total " + std::to_string(expected)) << last;
    // 1 + 2 BF16 layers x 778 + 60 NVFP4 layers x (6 + 772 x 4) + 2 lines, plus the total.
    EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'),
              1 + 2 * 778 + 60 * (6 + 772 * 4) + 2 + 1);
    EXPECT_NE(result.out.find("model.layers.30.block_sparse_moe.experts.255.w2.weight_packed U8 "
                              "[3072, 768]"),
              std::string::npos);
    EXPECT_NE(result.out.find("model.layers.61.self_attn.q_proj.weight BF16"), std::string::npos);
}

}  // namespace
}  // namespace fourbit::cli_test
