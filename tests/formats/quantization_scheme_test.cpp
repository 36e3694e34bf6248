// Which format a checkpoint's configs declare (none, FP8, NVFP4 compressed-tensors, NVFP4
// ModelOpt from hf_quant_config.json or config.json), what is refused, and the config blocks our
// writers emit (nvfp4.md §2.1, §2.2) read back to the same scheme.
#include "formats/quantization_scheme.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/model_config.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace fourbit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// nvfp4.md §2.2 verbatim (with an ignore list): what llm-compressor writes.
const json kCompressedTensors = json::parse(R"({
  "quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
  "quantization_status": "compressed",
  "config_groups": {"group_0": {
     "targets": ["Linear"],
     "weights": {"num_bits": 4, "type": "float", "symmetric": true, "strategy": "tensor_group",
                 "group_size": 16, "dynamic": false, "observer": "static_minmax"},
     "input_activations": {"num_bits": 4, "type": "float", "symmetric": true,
                 "strategy": "tensor_group", "group_size": 16, "dynamic": "local",
                 "observer": "static_minmax"},
     "output_activations": null}},
  "ignore": ["lm_head", "re:.*block_sparse_moe\\.gate$"],
  "kv_cache_scheme": null})");

// nvfp4.md §2.1's hf_quant_config.json.
const json kHfQuantConfig = json::parse(R"({
  "producer": {"name": "modelopt", "version": "0.39.0"},
  "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": null, "group_size": 16,
                   "exclude_modules": ["lm_head", "model.layers.0.*", "*block_sparse_moe.gate"]}})");

json with_quantization(const json& quantization_config) {
    return {{"model_type", "minimax_m2"}, {"quantization_config", quantization_config}};
}

QuantizationScheme parse(const json& config, const json* hf = nullptr) {
    return parse_quantization_scheme(config, hf, "dir/config.json");
}

std::string refusal(const json& config, const json* hf = nullptr) {
    try {
        parse(config, hf);
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

TEST(QuantizationScheme, NoQuantizationConfigIsBf16) {
    QuantizationScheme scheme = parse(json{{"model_type", "minimax_m2"}});
    EXPECT_EQ(scheme.format, QuantizationFormat::none);
    EXPECT_FALSE(scheme.quantizes("model.layers.0.self_attn.q_proj"));
}

TEST(QuantizationScheme, Fp8BlocksWithModulesToNotConvert) {
    QuantizationScheme scheme = parse(with_quantization(
        {{"quant_method", "fp8"},
         {"fmt", "float8_e4m3fn"},
         {"weight_block_size", {128, 128}},
         {"modules_to_not_convert", {"lm_head", "model.layers.0.block_sparse_moe.gate"}}}));
    EXPECT_EQ(scheme.format, QuantizationFormat::fp8_block);
    EXPECT_NE(scheme.ignored_by("model.layers.0.block_sparse_moe.gate"), nullptr);
    EXPECT_EQ(scheme.ignored_by("model.layers.1.block_sparse_moe.gate"), nullptr);
}

TEST(QuantizationScheme, CompressedTensorsW4A4) {
    QuantizationScheme scheme = parse(with_quantization(kCompressedTensors));
    EXPECT_EQ(scheme.format, QuantizationFormat::nvfp4_compressed_tensors);
    EXPECT_TRUE(scheme.input_scales);
    EXPECT_EQ(scheme.ignore_texts(),
              (std::vector<std::string>{"lm_head", "re:.*block_sparse_moe\\.gate$"}));
    EXPECT_TRUE(scheme.quantizes("model.layers.3.self_attn.q_proj"));
    EXPECT_TRUE(scheme.quantizes("model.layers.3.block_sparse_moe.experts.1.w2"));
    EXPECT_FALSE(scheme.quantizes("model.layers.3.block_sparse_moe.gate"));
    EXPECT_FALSE(scheme.quantizes("lm_head"));
    EXPECT_EQ(scheme.source, "dir/config.json");
}

TEST(QuantizationScheme, CompressedTensorsWeightOnlyAndNarrowTargets) {
    json quant = kCompressedTensors;
    quant["config_groups"]["group_0"]["input_activations"] = nullptr;
    quant["config_groups"]["group_0"]["targets"] = {"re:.*experts.*"};
    QuantizationScheme scheme = parse(with_quantization(quant));
    EXPECT_FALSE(scheme.input_scales);
    EXPECT_TRUE(scheme.quantizes("model.layers.3.block_sparse_moe.experts.1.w2"));
    EXPECT_FALSE(scheme.quantizes("model.layers.3.self_attn.q_proj")) << "not targeted";
}

TEST(QuantizationScheme, ModelOptFromHfQuantConfig) {
    // hf_quant_config.json decides, as in vLLM, whatever config.json says.
    QuantizationScheme scheme = parse(with_quantization(kCompressedTensors), &kHfQuantConfig);
    EXPECT_EQ(scheme.format, QuantizationFormat::nvfp4_modelopt);
    EXPECT_TRUE(scheme.input_scales);
    EXPECT_FALSE(scheme.quantizes("model.layers.0.self_attn.q_proj"));
    EXPECT_TRUE(scheme.quantizes("model.layers.10.self_attn.q_proj"));
    EXPECT_FALSE(scheme.quantizes("model.layers.10.block_sparse_moe.gate"));
}

TEST(QuantizationScheme, ModelOptFlatInConfigJsonAndWeightOnly) {
    json flat = json::parse(R"({
      "quant_method": "modelopt", "quant_algo": "W4A16_NVFP4", "ignore": ["lm_head"],
      "config_groups": {"group_0": {"targets": ["Linear"],
                        "weights": {"num_bits": 4, "type": "float", "group_size": 16}}}})");
    QuantizationScheme scheme = parse(with_quantization(flat));
    EXPECT_EQ(scheme.format, QuantizationFormat::nvfp4_modelopt);
    EXPECT_FALSE(scheme.input_scales);
    EXPECT_NE(scheme.ignored_by("lm_head"), nullptr);
}

TEST(QuantizationScheme, ReadsHfQuantConfigFromTheDirectory) {
    const test_support::TempDir temp("fourbit_scheme");
    const fs::path& dir = temp.path();
    write_json_file((dir / "hf_quant_config.json").string(), kHfQuantConfig);
    QuantizationScheme modelopt = read_quantization_scheme(dir.string(), json::object());
    EXPECT_EQ(modelopt.format, QuantizationFormat::nvfp4_modelopt);
    EXPECT_NE(modelopt.source.find("hf_quant_config.json"), std::string::npos);
    fs::remove(dir / "hf_quant_config.json");
    QuantizationScheme ct =
        read_quantization_scheme(dir.string(), with_quantization(kCompressedTensors));
    EXPECT_EQ(ct.format, QuantizationFormat::nvfp4_compressed_tensors);
}

TEST(QuantizationScheme, RefusesWhatFourbitDoesNotRun) {
    json fp8_ct = kCompressedTensors;
    fp8_ct["format"] = "float-quantized";
    EXPECT_NE(refusal(with_quantization(fp8_ct)).find("float-quantized"), std::string::npos);

    json group32 = kCompressedTensors;
    group32["config_groups"]["group_0"]["weights"]["group_size"] = 32;
    EXPECT_NE(refusal(with_quantization(group32)).find("group_size 32"), std::string::npos);

    json int4 = kCompressedTensors;
    int4["config_groups"]["group_0"]["weights"]["type"] = "int";
    EXPECT_NE(refusal(with_quantization(int4)).find("type 'int'"), std::string::npos);

    json frozen = kCompressedTensors;
    frozen["quantization_status"] = "frozen";
    EXPECT_NE(refusal(with_quantization(frozen)).find("frozen"), std::string::npos);

    json fp8_modelopt = kHfQuantConfig;
    fp8_modelopt["quantization"]["quant_algo"] = "FP8";
    EXPECT_NE(refusal(json::object(), &fp8_modelopt).find("'FP8'"), std::string::npos);
    fp8_modelopt["quantization"]["quant_algo"] = "MIXED_PRECISION";
    EXPECT_NE(refusal(json::object(), &fp8_modelopt).find("MIXED_PRECISION"), std::string::npos);

    EXPECT_NE(refusal(with_quantization({{"quant_method", "awq"}})).find("'awq'"),
              std::string::npos);
    json bad_ignore = kCompressedTensors;
    bad_ignore["ignore"] = {"re:model.(layers"};
    EXPECT_NE(refusal(with_quantization(bad_ignore)).find("re:model.(layers"), std::string::npos);
    bad_ignore["ignore"] = {7};
    EXPECT_NE(refusal(with_quantization(bad_ignore)).find("ignore"), std::string::npos);
    for (const std::string& message :
         {refusal(with_quantization(fp8_ct)), refusal(json::object(), &fp8_modelopt)}) {
        EXPECT_NE(message.find("dir/config.json"), std::string::npos) << message;
    }
}

TEST(QuantizationScheme, CompressedTensorsWriterEmitsSection22Exactly) {
    NvFp4ExportConfig config;
    config.format = QuantizationFormat::nvfp4_compressed_tensors;
    config.ignore = {"lm_head", "re:.*block_sparse_moe\\.gate$"};
    EXPECT_EQ(nvfp4_quantization_config(config), kCompressedTensors)
        << nvfp4_quantization_config(config).dump(2);
}

TEST(QuantizationScheme, ModelOptWritersAreReadBack) {
    NvFp4ExportConfig config;
    config.format = QuantizationFormat::nvfp4_modelopt;
    config.ignore = {"lm_head", "model.layers.0.*"};
    const json hf = modelopt_hf_quant_config(config);
    // vLLM requires these keys even when null.
    for (const char* key : {"quant_algo", "kv_cache_quant_algo", "group_size", "exclude_modules"}) {
        EXPECT_TRUE(hf["quantization"].contains(key)) << key;
    }
    QuantizationScheme from_hf = parse(json::object(), &hf);
    QuantizationScheme from_config = parse(with_quantization(nvfp4_quantization_config(config)));
    for (const QuantizationScheme& scheme : {from_hf, from_config}) {
        EXPECT_EQ(scheme.format, QuantizationFormat::nvfp4_modelopt);
        EXPECT_TRUE(scheme.input_scales);
        EXPECT_EQ(scheme.ignore_texts(), config.ignore);
    }
    config.input_scales = false;
    EXPECT_EQ(nvfp4_quantization_config(config)["quant_algo"], "W4A16_NVFP4");
    EXPECT_FALSE(nvfp4_quantization_config(config)["config_groups"]["group_0"].contains(
        "input_activations"));
    EXPECT_FALSE(parse(with_quantization(nvfp4_quantization_config(config))).input_scales);
}

TEST(QuantizationScheme, IgnoreListsAreRespeltForEachFormat) {
    std::vector<ModulePattern> patterns;
    for (const char* text : {"lm_head", "*block_sparse_moe.gate", "re:model\\.layers\\.0\\.",
                             "re:model\\.layers\\.(1|2)\\.mlp$"}) {
        patterns.push_back(ModulePattern::parse(text, "t"));
    }
    const std::vector<std::string> modules = {"lm_head", "model.layers.1.mlp", "model.layers.2.mlp",
                                              "model.layers.3.mlp"};
    EXPECT_EQ(
        ignore_list_for(QuantizationFormat::nvfp4_compressed_tensors, patterns, modules),
        (std::vector<std::string>{"lm_head", "re:.*block_sparse_moe\\.gate$",
                                  "re:model\\.layers\\.0\\.", "re:model\\.layers\\.(1|2)\\.mlp$"}));
    // ModelOpt's loaders know no regexes: one without a wildcard twin becomes the names it
    // matches.
    EXPECT_EQ(ignore_list_for(QuantizationFormat::nvfp4_modelopt, patterns, modules),
              (std::vector<std::string>{"lm_head", "*block_sparse_moe.gate", "model.layers.0.*",
                                        "model.layers.1.mlp", "model.layers.2.mlp"}));
}

}  // namespace
}  // namespace fourbit
