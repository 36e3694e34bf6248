// Loading a MiniMax-M2 checkpoint into ModelWeights: every tensor checked against config.json,
// linear modules in whichever format the quantization scheme says (BF16, FP8 blocks, NVFP4 of
// either layout), problems reported through one sink (checked_weights.h).
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/checkpoint.h"
#include "model/checked_weights.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace fourbit {

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
    return fmt::format("model.layers.{}.{}", layer, suffix);
}

std::string expert_tensor_name(int64_t layer, int64_t expert, const std::string& matrix) {
    return fmt::format("model.layers.{}.block_sparse_moe.experts.{}.{}.weight", layer, expert,
                       matrix);
}

namespace {

class WeightReader {
public:
    WeightReader(const Checkpoint& checkpoint, const MiniMaxM2Config& config,
                 const QuantizationScheme& scheme, const LoadOptions& options,
                 const ProblemSink& problem, CheckedWeights& out)
        : checkpoint_(checkpoint),
          config_(config),
          scheme_(scheme),
          options_(options),
          problem_(problem),
          out_(out) {}

    // A vector or matrix kept in f32 or bf16 (norms, embeddings, the routing bias).
    Tensor plain(const std::string& name, const Shape& shape) {
        Tensor tensor = fetch(name, name, shape);
        if (!tensor.defined()) return tensor;
        out_.other_bytes += tensor.size_bytes();
        if (tensor.dtype() != DType::bf16 && tensor.dtype() != DType::f32) {
            report("dtype", name,
                   fmt::format("tensor {} has dtype {}, expected BF16 or F32", name,
                               dtype_name(tensor.dtype())));
            return {};
        }
        return tensor;
    }

    // A linear module, stored as the scheme and the checkpoint say.
    LinearWeight linear(const LinearModule& module) {
        LinearRecord record;
        record.module = module;
        record.storage = linear_storage(checkpoint_, scheme_.format, module.prefix);
        if (const ModulePattern* pattern = scheme_.ignored_by(module.prefix)) {
            record.ignored_by = pattern->text();
        }
        const size_t problems_before = n_problems_;
        LinearWeight weight;
        switch (record.storage) {
            case LinearStorage::missing:
                report("missing_tensor", module.prefix,
                       fmt::format("checkpoint is missing tensor {}.weight{}", module.prefix,
                                   is_nvfp4(scheme_.format) ? " (or its NVFP4 tensors)" : ""));
                break;
            case LinearStorage::dense:
                weight = dense(module, record);
                break;
            case LinearStorage::fp8_block:
                weight = fp8_block(module, record);
                break;
            case LinearStorage::nvfp4:
                weight = nvfp4(module, record);
                break;
        }
        check_fused_group(record);
        record.ok = n_problems_ == problems_before;
        if (record.ok) {
            record.bytes_in_memory = weight.weight.size_bytes() + weight.block_scale.size_bytes();
        }
        out_.linears.push_back(std::move(record));
        return weight;
    }

private:
    void report(const char* kind, const std::string& subject, std::string message) {
        ++n_problems_;
        problem_({kind, subject, std::move(message)});
    }

    // Present, of the expected shape; marks it used. Undefined after a reported problem.
    Tensor fetch(const std::string& name, const std::string& subject, const Shape& shape) {
        if (!checkpoint_.contains(name)) {
            report("missing_tensor", subject, fmt::format("checkpoint is missing tensor {}", name));
            return {};
        }
        used(name);
        Tensor tensor = checkpoint_.tensor(name);
        if (tensor.shape() != shape) {
            report("shape", subject,
                   fmt::format("tensor {} has shape {}, expected {} from config.json", name,
                               shape_text(tensor.shape()), shape_text(shape)));
            return {};
        }
        return tensor;
    }

    void used(const std::string& name) { out_.used.insert(name); }

    LinearWeight dense(const LinearModule& module, LinearRecord& record) {
        const std::string name = module.prefix + ".weight";
        LinearWeight weight;
        weight.weight = fetch(name, module.prefix, {module.rows, module.cols});
        record.dtype = checkpoint_.entry(name).dtype;
        record.bytes = checkpoint_.entry(name).end_bytes - checkpoint_.entry(name).begin_bytes;
        if (weight.weight.defined() && record.dtype != DType::bf16 && record.dtype != DType::f32) {
            report(
                "dtype", module.prefix,
                fmt::format("tensor {} has dtype {}, expected {}", name, dtype_name(record.dtype),
                            is_nvfp4(scheme_.format) ? "BF16 or F32 (ignored modules), or the "
                                                       "format's NVFP4 tensors"
                                                     : "BF16, F32 or F8_E4M3"));
            return {};
        }
        // An NVFP4 checkpoint quantizes every linear module its ignore list does not name;
        // vLLM would look for NVFP4 tensors here and fail.
        if (is_nvfp4(scheme_.format) && scheme_.quantizes(module.prefix)) {
            report("not_quantized_nor_ignored", module.prefix,
                   fmt::format("is {} but neither quantized nor matched by the ignore list of {}",
                               dtype_name(record.dtype), scheme_.source));
        }
        return weight;
    }

    LinearWeight fp8_block(const LinearModule& module, LinearRecord& record) {
        const std::string name = module.prefix + ".weight";
        record.dtype = DType::f8_e4m3;
        LinearWeight weight;
        weight.weight = fetch(name, module.prefix, {module.rows, module.cols});
        record.bytes = weight.weight.size_bytes();
        if (!config_.fp8) {
            report("dtype", module.prefix,
                   fmt::format("tensor {} is F8_E4M3 but config.json has no fp8 "
                               "quantization_config",
                               name));
            return {};
        }
        weight.block_rows = config_.fp8->block_rows;
        weight.block_cols = config_.fp8->block_cols;
        const std::string scale_name = module.prefix + ".weight_scale_inv";
        weight.block_scale = fetch(scale_name, module.prefix,
                                   {(module.rows + weight.block_rows - 1) / weight.block_rows,
                                    (module.cols + weight.block_cols - 1) / weight.block_cols});
        if (!weight.weight.defined() || !weight.block_scale.defined()) return {};
        record.bytes += weight.block_scale.size_bytes();
        if (weight.block_scale.dtype() != DType::f32) {
            report("dtype", module.prefix,
                   fmt::format("tensor {} has dtype {}, expected F32", scale_name,
                               dtype_name(weight.block_scale.dtype())));
            return {};
        }
        const float* scales = weight.block_scale.data<float>();
        for (int64_t i = 0; i < weight.block_scale.numel(); ++i) {
            if (!std::isfinite(scales[i]) || scales[i] < 0) {
                report("scale", module.prefix,
                       fmt::format("tensor {} holds an invalid scale {} at element {}", scale_name,
                                   scales[i], i));
                return {};
            }
        }
        return weight;
    }

    LinearWeight nvfp4(const LinearModule& module, LinearRecord& record) {
        record.dtype = DType::u8;
        const NvFp4TensorNames names = nvfp4_tensor_names(scheme_.format, module.prefix);
        for (NvFp4Role role : {NvFp4Role::packed, NvFp4Role::block_scale, NvFp4Role::global_scale,
                               NvFp4Role::input_scale}) {
            const std::string& name = names.of(role);
            if (!checkpoint_.contains(name)) continue;
            used(name);
            record.bytes += checkpoint_.entry(name).end_bytes - checkpoint_.entry(name).begin_bytes;
        }
        if (!record.ignored_by.empty()) {
            report("ignored_but_quantized", module.prefix,
                   fmt::format("is stored as NVFP4 but the ignore list's '{}' ({}) keeps it "
                               "unquantized",
                               record.ignored_by, scheme_.source));
        }
        std::optional<NvFp4Linear> read =
            read_nvfp4_linear(checkpoint_, scheme_.format, module.prefix, module.rows, module.cols,
                              [this](CheckpointProblem problem) {
                                  ++n_problems_;
                                  problem_(std::move(problem));
                              });
        if (!read) return {};
        record.global_scale = read->global_scale;
        record.input_scale = read->input_scale;
        LinearWeight weight;
        weight.weight = read->packed;
        weight.block_scale = read->block_scale;
        weight.global_scale = read->global_scale;
        weight.input_scale = read->input_scale.value_or(0.0f);
        weight.emulate_w4a4 = options_.emulate_w4a4 && read->input_scale.has_value();
        return weight;
    }

    // vLLM concatenates q/k/v and an expert's w1/w3 and keeps one global scale for the result
    // (nvfp4.md §2.3-2.4), so the members must be stored alike and agree on their scales.
    void check_fused_group(const LinearRecord& record) {
        const std::string& group = record.module.fused_group;
        if (group.empty() || record.storage == LinearStorage::missing) return;
        auto [it, first] = groups_.try_emplace(group, record);
        if (first) return;
        const LinearRecord& head = it->second;
        if (head.storage != record.storage) {
            report("fused_group_mixed", record.module.prefix,
                   fmt::format("is {} but {} of the same fused group {} is {}",
                               linear_storage_name(record.storage), head.module.prefix, group,
                               linear_storage_name(head.storage)));
            return;
        }
        auto differ = [&](const char* what, std::optional<float> a, std::optional<float> b) {
            if (!a || !b || *a == *b) return;
            report("fused_scale_mismatch", record.module.prefix,
                   fmt::format("{} {:.9g} differs from {:.9g} of {} in the same fused group {} "
                               "(vLLM keeps one scale for the fused matrix)",
                               what, *a, *b, head.module.prefix, group));
        };
        differ("weight global scale", record.global_scale, head.global_scale);
        differ("input scale", record.input_scale, head.input_scale);
    }

    const Checkpoint& checkpoint_;
    const MiniMaxM2Config& config_;
    const QuantizationScheme& scheme_;
    const LoadOptions& options_;
    const ProblemSink& problem_;
    CheckedWeights& out_;
    size_t n_problems_ = 0;
    std::map<std::string, LinearRecord> groups_;  // first member of each fused group
};

}  // namespace

CheckedWeights read_checked_weights(const std::string& model_dir, const Checkpoint& checkpoint,
                                    const LoadOptions& options, const ProblemSink& problem) {
    const std::string config_path = (std::filesystem::path(model_dir) / "config.json").string();
    if (!std::filesystem::exists(config_path)) fail("{} has no config.json", model_dir);
    const nlohmann::json config_json = read_json_file(config_path);
    CheckedWeights out;
    out.weights.config = parse_minimax_m2_config(config_json, config_path);
    out.scheme = read_quantization_scheme(model_dir, config_json);
    const MiniMaxM2Config& c = out.weights.config;
    WeightReader reader(checkpoint, c, out.scheme, options, problem, out);
    const std::vector<LinearModule> modules = minimax_m2_linear_modules(c);
    size_t next_module = 0;
    auto linear = [&](const std::string& prefix) {
        const LinearModule& module = modules.at(next_module++);
        FOURBIT_ASSERT(module.prefix == prefix, "module order: {} vs {}", module.prefix, prefix);
        return reader.linear(module);
    };

    ModelWeights& weights = out.weights;
    weights.embed_tokens = reader.plain("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
    Progress progress("loading", static_cast<uint64_t>(c.num_hidden_layers), "layers");
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        LayerWeights layer;
        auto name = [i](const std::string& suffix) { return layer_tensor_name(i, suffix); };
        layer.input_norm = reader.plain(name("input_layernorm.weight"), {c.hidden_size});
        layer.q = linear(name("self_attn.q_proj"));
        layer.k = linear(name("self_attn.k_proj"));
        layer.v = linear(name("self_attn.v_proj"));
        layer.o = linear(name("self_attn.o_proj"));
        layer.q_norm = reader.plain(name("self_attn.q_norm.weight"), {c.q_width()});
        layer.k_norm = reader.plain(name("self_attn.k_norm.weight"), {c.kv_width()});
        layer.post_attention_norm =
            reader.plain(name("post_attention_layernorm.weight"), {c.hidden_size});
        layer.router = linear(name("block_sparse_moe.gate"));
        if (c.use_routing_bias) {
            layer.routing_bias = reader.plain(name("block_sparse_moe.e_score_correction_bias"),
                                              {c.num_local_experts});
        }
        for (int64_t e = 0; e < c.num_local_experts; ++e) {
            const std::string expert = fmt::format("block_sparse_moe.experts.{}.", e);
            ExpertWeights weights_e;
            weights_e.gate = linear(name(expert + "w1"));
            weights_e.down = linear(name(expert + "w2"));
            weights_e.up = linear(name(expert + "w3"));
            layer.experts.push_back(std::move(weights_e));
        }
        weights.layers.push_back(std::move(layer));
        progress.advance(1);
    }
    progress.finish();
    weights.final_norm = reader.plain("model.norm.weight", {c.hidden_size});
    if (c.tie_word_embeddings && !checkpoint.contains("lm_head.weight") &&
        linear_storage(checkpoint, out.scheme.format, "lm_head") == LinearStorage::missing) {
        weights.lm_head.weight = weights.embed_tokens;
    } else {
        weights.lm_head = linear("lm_head");
    }
    return out;
}

ModelWeights load_model_weights(const std::string& model_dir, const LoadOptions& options) {
    Checkpoint checkpoint = Checkpoint::open(model_dir);
    CheckedWeights checked = read_checked_weights(
        model_dir, checkpoint, options, [&model_dir](CheckpointProblem problem) {
            fail("{}: {}: {}", model_dir, problem.subject, problem.message);
        });
    size_t unused = 0;
    for (const std::string& name : checkpoint.tensor_names()) {
        if (!checked.used.count(name)) ++unused;
    }
    // vLLM likewise skips what it does not run (MTP layers 62-64, rotary_emb.inv_freq).
    if (unused > 0) spdlog::warn("{}: {} tensors are not used by the model", model_dir, unused);
    if (options.device.is_cuda()) {
        if (options.emulate_w4a4) fail("{}: W4A4 emulation runs on the host only", model_dir);
        return weights_to_device(checked.weights, options.device);
    }
    return std::move(checked.weights);
}

}  // namespace fourbit
