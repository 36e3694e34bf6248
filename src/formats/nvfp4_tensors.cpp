#include "formats/nvfp4_tensors.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace fourbit {

namespace {

bool is_ct(QuantizationFormat format) {
    return format == QuantizationFormat::nvfp4_compressed_tensors;
}

// A scalar scale tensor: ModelOpt writes shape [] (`.squeeze()`), compressed-tensors [1]; both
// are read in either layout.
bool is_scalar_shape(const Shape& shape) { return shape.empty() || shape == Shape{1}; }

constexpr int64_t kBlock = 16;

}  // namespace

const std::string& NvFp4TensorNames::of(NvFp4Role role) const {
    switch (role) {
        case NvFp4Role::packed:
            return packed;
        case NvFp4Role::block_scale:
            return block_scale;
        case NvFp4Role::global_scale:
            return global_scale;
        case NvFp4Role::input_scale:
            return input_scale;
    }
    return packed;
}

NvFp4TensorNames nvfp4_tensor_names(QuantizationFormat format, const std::string& prefix) {
    FOURBIT_ASSERT(is_nvfp4(format), "NVFP4 tensor names of a non-NVFP4 format");
    if (is_ct(format)) {
        return {prefix + ".weight_packed", prefix + ".weight_scale",
                prefix + ".weight_global_scale", prefix + ".input_global_scale"};
    }
    return {prefix + ".weight", prefix + ".weight_scale", prefix + ".weight_scale_2",
            prefix + ".input_scale"};
}

Shape nvfp4_tensor_shape(QuantizationFormat format, NvFp4Role role, int64_t rows, int64_t cols) {
    switch (role) {
        case NvFp4Role::packed:
            return {rows, cols / 2};
        case NvFp4Role::block_scale:
            return {rows, cols / kBlock};
        case NvFp4Role::global_scale:
        case NvFp4Role::input_scale:
            return is_ct(format) ? Shape{1} : Shape{};
    }
    return {};
}

DType nvfp4_tensor_dtype(NvFp4Role role) {
    switch (role) {
        case NvFp4Role::packed:
            return DType::u8;
        case NvFp4Role::block_scale:
            return DType::f8_e4m3;
        default:
            return DType::f32;
    }
}

std::optional<std::pair<std::string, NvFp4Role>> parse_nvfp4_tensor_name(QuantizationFormat format,
                                                                         std::string_view name) {
    // Longest suffixes first: ".weight_scale_2" before ".weight_scale", ".weight_scale" before
    // ".weight".
    static const std::pair<std::string_view, NvFp4Role> kCt[] = {
        {".weight_global_scale", NvFp4Role::global_scale},
        {".input_global_scale", NvFp4Role::input_scale},
        {".weight_packed", NvFp4Role::packed},
        {".weight_scale", NvFp4Role::block_scale}};
    static const std::pair<std::string_view, NvFp4Role> kModelOpt[] = {
        {".weight_scale_2", NvFp4Role::global_scale},
        {".input_scale", NvFp4Role::input_scale},
        {".weight_scale", NvFp4Role::block_scale},
        {".weight", NvFp4Role::packed}};
    std::span<const std::pair<std::string_view, NvFp4Role>> suffixes;
    if (is_ct(format)) {
        suffixes = kCt;
    } else if (format == QuantizationFormat::nvfp4_modelopt) {
        suffixes = kModelOpt;
    }
    for (const auto& [suffix, role] : suffixes) {
        if (name.size() > suffix.size() && name.ends_with(suffix)) {
            return std::make_pair(std::string(name.substr(0, name.size() - suffix.size())), role);
        }
    }
    return std::nullopt;
}

float stored_scale(QuantizationFormat format, float dequantize_scale) {
    return is_ct(format) ? 1.0f / dequantize_scale : dequantize_scale;
}

float dequantize_scale(QuantizationFormat format, float stored) {
    return is_ct(format) ? 1.0f / stored : stored;
}

bool reciprocal_round_trips(float x) {
    // NOTE: volatile keeps the compiler from folding 1/(1/x) into x.
    volatile float inverse = 1.0f / x;
    volatile float back = 1.0f / inverse;
    return back == x;
}

float reciprocal_stable_scale(float x) {
    FOURBIT_ASSERT(std::isfinite(x) && x > 0.0f, "scale {}", x);
    float candidate = x;
    for (int step = 0; step < 4096; ++step) {
        if (reciprocal_round_trips(candidate)) return candidate;
        candidate = std::nextafter(candidate, std::numeric_limits<float>::infinity());
    }
    FOURBIT_ASSERT(false, "no reciprocal-stable float within 4096 ulps above {}", x);
    return x;
}

std::string_view linear_storage_name(LinearStorage storage) {
    switch (storage) {
        case LinearStorage::missing:
            return "missing";
        case LinearStorage::dense:
            return "dense";
        case LinearStorage::fp8_block:
            return "fp8";
        case LinearStorage::nvfp4:
            return "nvfp4";
    }
    return "?";
}

LinearStorage linear_storage(const Checkpoint& checkpoint, QuantizationFormat format,
                             const std::string& prefix) {
    const std::string weight = prefix + ".weight";
    if (is_nvfp4(format)) {
        const NvFp4TensorNames names = nvfp4_tensor_names(format, prefix);
        if (is_ct(format) && checkpoint.contains(names.packed)) return LinearStorage::nvfp4;
        if (!checkpoint.contains(weight)) {
            // Scales without codes: an NVFP4 module missing its weights (the reader says so).
            return checkpoint.contains(names.block_scale) ? LinearStorage::nvfp4
                                                          : LinearStorage::missing;
        }
        const DType dtype = checkpoint.entry(weight).dtype;
        if (dtype == DType::u8 && !is_ct(format)) return LinearStorage::nvfp4;
        return dtype == DType::f8_e4m3 ? LinearStorage::fp8_block : LinearStorage::dense;
    }
    if (!checkpoint.contains(weight)) return LinearStorage::missing;
    return checkpoint.entry(weight).dtype == DType::f8_e4m3 ? LinearStorage::fp8_block
                                                            : LinearStorage::dense;
}

std::optional<NvFp4Linear> read_nvfp4_linear(const Checkpoint& checkpoint,
                                             QuantizationFormat format, const std::string& prefix,
                                             int64_t rows, int64_t cols,
                                             const ProblemSink& problem) {
    const NvFp4TensorNames names = nvfp4_tensor_names(format, prefix);
    bool ok = true;
    auto report = [&](const char* kind, std::string message) {
        ok = false;
        problem({kind, prefix, std::move(message)});
    };
    if (cols % kBlock != 0) {
        report("k_not_multiple_of_16",
               fmt::format("K = {} input features is not a multiple of NVFP4's block of {}", cols,
                           kBlock));
    }

    // A tensor of the module, checked for presence, dtype and shape; undefined when unusable.
    auto fetch = [&](NvFp4Role role, bool required) -> Tensor {
        const std::string& name = names.of(role);
        if (!checkpoint.contains(name)) {
            if (required) report("missing_tensor", fmt::format("tensor {} is missing", name));
            return {};
        }
        const SafetensorsEntry& entry = checkpoint.entry(name);
        const DType dtype = nvfp4_tensor_dtype(role);
        if (entry.dtype != dtype) {
            report("dtype", fmt::format("tensor {} has dtype {}, expected {}", name,
                                        dtype_name(entry.dtype), dtype_name(dtype)));
            return {};
        }
        const bool scalar = role == NvFp4Role::global_scale || role == NvFp4Role::input_scale;
        const Shape expected = nvfp4_tensor_shape(format, role, rows, cols);
        if (scalar ? !is_scalar_shape(entry.shape) : entry.shape != expected) {
            report("shape", fmt::format("tensor {} has shape {}, expected {}", name,
                                        shape_text(entry.shape), shape_text(expected)));
            return {};
        }
        return checkpoint.tensor(name);
    };

    // A scalar scale: finite and positive as stored and once turned into the dequantize
    // direction (a compressed-tensors 1e-45 would become infinity).
    auto scale_value = [&](const Tensor& tensor, const std::string& name,
                           std::optional<float>* stored_out) -> std::optional<float> {
        if (!tensor.defined()) return std::nullopt;
        float stored;
        std::memcpy(&stored, tensor.raw(), sizeof(stored));
        const float value = dequantize_scale(format, stored);
        if (!(std::isfinite(stored) && stored > 0.0f && std::isfinite(value) && value > 0.0f)) {
            report("scale", fmt::format("{} = {} (a global scale must be finite and positive)",
                                        name, stored));
            return std::nullopt;
        }
        *stored_out = stored;
        return value;
    };

    Tensor packed = fetch(NvFp4Role::packed, true);
    Tensor block_scale = fetch(NvFp4Role::block_scale, true);
    Tensor global = fetch(NvFp4Role::global_scale, true);
    Tensor input = fetch(NvFp4Role::input_scale, false);
    NvFp4Linear linear;
    std::optional<float> stored_global;
    if (auto value = scale_value(global, names.global_scale, &stored_global)) {
        linear.global_scale = *value;
        linear.stored_global_scale = *stored_global;
    }
    linear.input_scale = scale_value(input, names.input_scale, &linear.stored_input_scale);

    if (block_scale.defined()) {
        // E4M3 codes 0x7f and 0xff are NaN, 0x80 and above negative: every code >= 0x7f is
        // invalid, which makes this one comparison per byte.
        const uint8_t* codes = block_scale.data<uint8_t>();
        const int64_t n = block_scale.numel();
        int64_t n_nan = 0, n_negative = 0, first = -1;
        for (int64_t i = 0; i < n; ++i) {
            if (codes[i] < 0x7f) continue;
            if ((codes[i] & 0x7f) == 0x7f) {
                ++n_nan;
            } else {
                ++n_negative;
            }
            if (first < 0) first = i;
        }
        if (first >= 0) {
            const int64_t per_row = block_scale.dim(1);
            report("scale",
                   fmt::format("tensor {} holds {} NaN and {} negative block scales (first at "
                               "[{}, {}])",
                               names.block_scale, n_nan, n_negative, first / per_row,
                               first % per_row));
        }
    }
    if (!ok) return std::nullopt;
    linear.packed = packed;
    linear.block_scale = block_scale;
    return linear;
}

void write_scale_bytes(QuantizationFormat format, float dequantize_scale, std::span<uint8_t> out) {
    FOURBIT_ASSERT(out.size() == sizeof(float), "a scale tensor is one f32, got {} bytes",
                   out.size());
    const float value = stored_scale(format, dequantize_scale);
    std::memcpy(out.data(), &value, sizeof(value));
}

}  // namespace fourbit
