#include "model/make_model.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "formats/checkpoint.h"
#include "formats/nvfp4_tensors.h"
#include "model/linear_modules.h"
#include "model/weights.h"
#include "nvfp4/quantize.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {

MiniMaxM2Config preset_config(const std::string& preset, std::optional<int64_t> layers) {
    MiniMaxM2Config c;
    c.rope_theta = 5e6;
    c.rms_norm_eps = 1e-6;
    c.max_position_embeddings = 204800;
    if (preset == "tiny") {
        c.vocab_size = 4096;
        c.hidden_size = 256;
        c.num_hidden_layers = 4;
        c.num_attention_heads = 8;
        c.num_key_value_heads = 2;
        c.head_dim = 64;
        c.rotary_dim = 32;
        c.num_local_experts = 16;
        c.num_experts_per_tok = 4;
        c.intermediate_size = 128;
    } else if (preset == "small") {
        c.vocab_size = 8192;
        c.hidden_size = 1024;
        c.num_hidden_layers = 8;
        c.num_attention_heads = 16;
        c.num_key_value_heads = 4;
        c.head_dim = 128;
        c.rotary_dim = 64;
        c.num_local_experts = 32;
        c.num_experts_per_tok = 4;
        c.intermediate_size = 512;
    } else if (preset == "m2.7-slice" || preset == "m2.7") {
        c.vocab_size = 200064;
        c.hidden_size = 3072;
        c.num_hidden_layers = preset == "m2.7" ? 62 : 4;
        c.num_attention_heads = 48;
        c.num_key_value_heads = 8;
        c.head_dim = 128;
        c.rotary_dim = 64;
        c.num_local_experts = 256;
        c.num_experts_per_tok = 8;
        c.intermediate_size = 1536;
        c.bos_token_id = 200019;
        c.eos_token_ids = {200020};
    } else {
        fail("unknown preset '{}' (tiny, small, m2.7-slice, m2.7)", preset);
    }
    if (layers) {
        if (*layers <= 0) fail("--layers must be positive, got {}", *layers);
        c.num_hidden_layers = *layers;
    }
    return c;
}

float nvfp4_export_global_scale(float amax) {
    return reciprocal_stable_scale(nvfp4_global_scale(amax));
}

std::vector<std::string> seed_ignore_list(const MiniMaxM2Config& config, QuantizationFormat format,
                                          bool keep_edge_layers) {
    // Written once as wildcards; compressed-tensors gets their regex twins.
    std::vector<std::string> wildcards = {"lm_head", "*embed_tokens*", "*block_sparse_moe.gate"};
    if (keep_edge_layers) {
        wildcards.push_back("model.layers.0.*");
        wildcards.push_back(fmt::format("model.layers.{}.*", config.num_hidden_layers - 1));
    }
    std::vector<ModulePattern> patterns;
    for (const std::string& text : wildcards) {
        patterns.push_back(ModulePattern::parse(text, "the seed ignore list"));
    }
    return ignore_list_for(format, patterns, {});
}

namespace {

// The seed ignore list, parsed: whether make-model quantizes a module.
std::vector<ModulePattern> seed_ignore_patterns(const MiniMaxM2Config& config,
                                                QuantizationFormat format, bool keep_edge_layers) {
    std::vector<ModulePattern> patterns;
    for (const std::string& text : seed_ignore_list(config, format, keep_edge_layers)) {
        patterns.push_back(ModulePattern::parse(text, "the seed ignore list"));
    }
    return patterns;
}

}  // namespace

std::vector<TensorPlan> model_tensor_plan(const MiniMaxM2Config& c, QuantizationFormat format,
                                          bool keep_edge_layers) {
    FOURBIT_ASSERT(format == QuantizationFormat::none || is_nvfp4(format),
                   "make-model writes BF16 or NVFP4");
    const std::vector<ModulePattern> ignore =
        is_nvfp4(format) ? seed_ignore_patterns(c, format, keep_edge_layers)
                         : std::vector<ModulePattern>{};
    std::vector<TensorPlan> plan;
    auto add = [&plan](std::string name, Shape shape) {
        plan.push_back({std::move(name), DType::bf16, std::move(shape)});
    };
    // A linear module: its BF16 `.weight`, or its NVFP4 tensors.
    auto add_linear = [&](const std::string& prefix, int64_t rows, int64_t cols) {
        if (!is_nvfp4(format) || first_match(ignore, prefix) != nullptr) {
            add(prefix + ".weight", {rows, cols});
            return;
        }
        const NvFp4TensorNames names = nvfp4_tensor_names(format, prefix);
        for (NvFp4Role role : {NvFp4Role::packed, NvFp4Role::block_scale, NvFp4Role::global_scale,
                               NvFp4Role::input_scale}) {
            plan.push_back({names.of(role), nvfp4_tensor_dtype(role),
                            nvfp4_tensor_shape(format, role, rows, cols)});
        }
    };
    add("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        auto name = [l](const char* suffix) { return layer_tensor_name(l, suffix); };
        add(name("input_layernorm.weight"), {c.hidden_size});
        add_linear(name("self_attn.q_proj"), c.q_width(), c.hidden_size);
        add_linear(name("self_attn.k_proj"), c.kv_width(), c.hidden_size);
        add_linear(name("self_attn.v_proj"), c.kv_width(), c.hidden_size);
        add_linear(name("self_attn.o_proj"), c.hidden_size, c.q_width());
        add(name("self_attn.q_norm.weight"), {c.q_width()});
        add(name("self_attn.k_norm.weight"), {c.kv_width()});
        add(name("post_attention_layernorm.weight"), {c.hidden_size});
        add_linear(name("block_sparse_moe.gate"), c.num_local_experts, c.hidden_size);
        add(name("block_sparse_moe.e_score_correction_bias"), {c.num_local_experts});
        for (int64_t e = 0; e < c.num_local_experts; ++e) {
            const std::string expert = fmt::format("block_sparse_moe.experts.{}.", e);
            add_linear(name((expert + "w1").c_str()), c.intermediate_size, c.hidden_size);
            add_linear(name((expert + "w2").c_str()), c.hidden_size, c.intermediate_size);
            add_linear(name((expert + "w3").c_str()), c.intermediate_size, c.hidden_size);
        }
    }
    add("model.norm.weight", {c.hidden_size});
    add_linear("lm_head", c.vocab_size, c.hidden_size);
    return plan;
}

namespace {

// A counter-based generator (splitmix64): element i of a tensor depends only on the seed, the
// tensor's name and i, so tensors are filled in parallel and reproducibly.
uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t name_hash(const std::string& name) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    for (unsigned char ch : name) hash = (hash ^ ch) * 1099511628211ull;
    return hash;
}

double uniform(uint64_t key, uint64_t i) {
    return (static_cast<double>(mix(key ^ mix(i)) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Uniform on [-sqrt(3), sqrt(3)]: unit variance, and cheap enough to write the full M2.7 shape.
double unit_variance(uint64_t key, uint64_t i) {
    return 1.7320508075688772 * (2.0 * uniform(key, i) - 1.0);
}

bool ends_with(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() &&
           text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void fill_random(const TensorPlan& plan, std::span<uint8_t> out, uint64_t seed) {
    const uint64_t key = mix(seed) ^ name_hash(plan.name);
    const int64_t n = shape_numel(plan.shape);
    auto* values = reinterpret_cast<uint16_t*>(out.data());
    enum class Kind { norm, bias, embedding, matrix } kind = Kind::matrix;
    if (ends_with(plan.name, "norm.weight")) kind = Kind::norm;
    if (ends_with(plan.name, "e_score_correction_bias")) kind = Kind::bias;
    if (plan.name == "model.embed_tokens.weight") kind = Kind::embedding;
    const double matrix_std = plan.shape.size() == 2 ? 1.0 / std::sqrt(plan.shape[1]) : 1.0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        double value = 0;
        switch (kind) {
            case Kind::norm:
                value = 0.5 + uniform(key, i);
                break;  // in (0.5, 1.5)
            case Kind::bias:
                value = 0.1 * unit_variance(key, i);
                break;  // shifts selection
            case Kind::embedding:
                value = unit_variance(key, i);
                break;  // rows of norm ~sqrt(H)
            case Kind::matrix:
                value = matrix_std * unit_variance(key, i);
                break;  // unit-variance outputs
        }
        values[i] = f32_to_bf16(static_cast<float>(value));
    }
}

// The BF16 values make-model gives linear module `prefix` (its `.weight`), as f32: what the
// NVFP4 checkpoint quantizes, so that it is the quantized twin of the BF16 one of that seed.
std::vector<float> bf16_weight_values(const LinearModule& module, uint64_t seed) {
    const TensorPlan plan{module.prefix + ".weight", DType::bf16, {module.rows, module.cols}};
    std::vector<uint16_t> bits(module.rows * module.cols);
    fill_random(
        plan,
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(bits.data()), bits.size() * sizeof(uint16_t)),
        seed);
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) values[i] = bf16_to_f32(bits[i]);
    return values;
}

// Fills an NVFP4 checkpoint's tensors. The writer asks for them in its own order (scales, then
// BF16, then codes), so global scales are computed per fused group on demand and remembered
// (a float each), and the last quantized module is kept so that its block scales, asked for
// right after its codes, are not quantized twice.
class NvFp4Filler {
public:
    NvFp4Filler(const MiniMaxM2Config& config, QuantizationFormat format, uint64_t seed,
                bool keep_edge_layers)
        : format_(format), seed_(seed) {
        const std::vector<ModulePattern> ignore =
            seed_ignore_patterns(config, format, keep_edge_layers);
        modules_ = minimax_m2_linear_modules(config);
        for (const LinearModule& module : modules_) {
            if (first_match(ignore, module.prefix) != nullptr) continue;
            quantized_.emplace(module.prefix, &module);
            group_members_[group_of(module)].push_back(&module);
        }
        input_scale_ = nvfp4_export_global_scale(kMakeModelInputAmax);
    }

    void fill(const TensorPlan& plan, std::span<uint8_t> out) {
        // Everything BF16 is random; the rest belongs to a quantized module.
        auto parsed = parse_nvfp4_tensor_name(format_, plan.name);
        if (plan.dtype == DType::bf16) {
            fill_random(plan, out, seed_);
            return;
        }
        auto module = parsed ? quantized_.find(parsed->first) : quantized_.end();
        FOURBIT_ASSERT(module != quantized_.end(), "no quantized module for {}", plan.name);
        switch (parsed->second) {
            case NvFp4Role::global_scale:
                write_scale_bytes(format_, global_scale(*module->second), out);
                return;
            case NvFp4Role::input_scale:
                write_scale_bytes(format_, input_scale_, out);
                return;
            case NvFp4Role::packed:
            case NvFp4Role::block_scale: {
                const NvFp4Matrix& matrix = quantized(*module->second);
                const std::vector<uint8_t>& bytes =
                    parsed->second == NvFp4Role::packed ? matrix.packed : matrix.block_scales;
                FOURBIT_ASSERT(bytes.size() == out.size(), "tensor {}", plan.name);
                std::copy(bytes.begin(), bytes.end(), out.begin());
                return;
            }
        }
    }

private:
    static const std::string& group_of(const LinearModule& module) {
        return module.fused_group.empty() ? module.prefix : module.fused_group;
    }

    // ModelOpt's weight_scale_2 from the amax of the module's fused group, nudged so that the
    // compressed-tensors reciprocal stores it exactly.
    float global_scale(const LinearModule& module) {
        const std::string& group = group_of(module);
        if (auto it = global_scales_.find(group); it != global_scales_.end()) return it->second;
        float amax = 0.0f;
        for (const LinearModule* member : group_members_.at(group)) {
            amax = std::max(amax, checked_amax(bf16_weight_values(*member, seed_), member->prefix));
        }
        const float scale = nvfp4_export_global_scale(amax);
        global_scales_.emplace(group, scale);
        return scale;
    }

    const NvFp4Matrix& quantized(const LinearModule& module) {
        if (cached_prefix_ == module.prefix) return cached_;
        const float scale = global_scale(module);
        const std::vector<float> values = bf16_weight_values(module, seed_);
        cached_.rows = module.rows;
        cached_.cols = module.cols;
        cached_.global_scale = scale;
        cached_.packed.assign(module.rows * module.cols / 2, 0);
        cached_.block_scales.assign(module.rows * module.cols / kNvFp4BlockSize, 0);
        // Rows are independent: quantize bands of rows in parallel, each into its place. An
        // exception must not leave an OpenMP region, so the first is carried out of it.
        constexpr int64_t kBand = 64;
        const int64_t n_bands = (module.rows + kBand - 1) / kBand;
        std::exception_ptr error;
        cached_prefix_.clear();
#pragma omp parallel for schedule(dynamic)
        for (int64_t band = 0; band < n_bands; ++band) {
            const int64_t row = band * kBand;
            const int64_t rows = std::min(kBand, module.rows - row);
            try {
                NvFp4Matrix part = quantize_nvfp4(
                    std::span<const float>(values).subspan(row * module.cols, rows * module.cols),
                    rows, module.cols, scale, module.prefix);
                std::copy(part.packed.begin(), part.packed.end(),
                          cached_.packed.begin() + row * module.cols / 2);
                std::copy(part.block_scales.begin(), part.block_scales.end(),
                          cached_.block_scales.begin() + row * module.cols / kNvFp4BlockSize);
            } catch (...) {
#pragma omp critical
                if (!error) error = std::current_exception();
            }
        }
        if (error) std::rethrow_exception(error);
        cached_prefix_ = module.prefix;
        return cached_;
    }

    QuantizationFormat format_;
    uint64_t seed_;
    std::vector<LinearModule> modules_;
    std::map<std::string, const LinearModule*> quantized_;
    std::map<std::string, std::vector<const LinearModule*>> group_members_;
    std::map<std::string, float> global_scales_;
    float input_scale_ = 0.0f;
    std::string cached_prefix_;
    NvFp4Matrix cached_;
};

}  // namespace

void make_model(const MakeModelOptions& options) {
    MiniMaxM2Config config = preset_config(options.preset, options.layers);
    if (options.bos_token_id) config.bos_token_id = options.bos_token_id;
    if (!options.eos_token_ids.empty()) config.eos_token_ids = options.eos_token_ids;
    std::filesystem::path dir(options.out_dir);
    std::filesystem::create_directories(dir);
    nlohmann::json config_json = minimax_m2_config_to_json(config);
    if (is_nvfp4(options.format)) {
        NvFp4ExportConfig export_config;
        export_config.format = options.format;
        export_config.ignore =
            seed_ignore_list(config, options.format, options.keep_edge_layers_bf16);
        export_config.input_scales = true;
        write_nvfp4_configs(dir.string(), config_json, export_config);
    } else {
        write_json_file((dir / "config.json").string(), config_json);
        std::error_code ignored;  // a ModelOpt file left by an earlier run would mislabel it
        std::filesystem::remove(dir / "hf_quant_config.json", ignored);
    }
    nlohmann::json generation = {
        {"do_sample", true}, {"temperature", 1.0}, {"top_p", 0.95}, {"top_k", 40}};
    if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
    if (!config.eos_token_ids.empty()) generation["eos_token_id"] = config.eos_token_ids.front();
    write_json_file((dir / "generation_config.json").string(), generation);
    const uint64_t seed = options.seed;
    std::vector<TensorPlan> plan =
        model_tensor_plan(config, options.format, options.keep_edge_layers_bf16);
    if (!is_nvfp4(options.format)) {
        write_sharded_checkpoint(
            dir.string(), plan,
            [seed](const TensorPlan& tensor, std::span<uint8_t> out) {
                fill_random(tensor, out, seed);
            },
            options.max_shard_bytes);
        return;
    }
    NvFp4Filler filler(config, options.format, seed, options.keep_edge_layers_bf16);
    write_sharded_checkpoint(
        dir.string(), plan,
        [&filler](const TensorPlan& tensor, std::span<uint8_t> out) { filler.fill(tensor, out); },
        options.max_shard_bytes);
}

}  // namespace fourbit
