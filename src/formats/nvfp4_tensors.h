// The tensors of one NVFP4 linear module in either on-disk layout (nvfp4.md §2), read with every
// check a loader needs, and the names and scale encodings a writer needs.
//
//   role            compressed-tensors                ModelOpt
//   packed codes    P.weight_packed      u8 [N, K/2]  P.weight          u8 [N, K/2]
//   block scales    P.weight_scale       e4m3 [N,K/16] P.weight_scale   e4m3 [N, K/16]
//   global scale    P.weight_global_scale f32 [1]     P.weight_scale_2  f32 []
//                   = 2688 / amax (quantize direction) = amax / 2688 (dequantize direction)
//   input scale     P.input_global_scale f32 [1]      P.input_scale     f32 []
//
// In memory every scale is in the dequantize direction (ModelOpt's); compressed-tensors values
// are reciprocals on disk.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "formats/checkpoint.h"
#include "formats/quantization_scheme.h"
#include "tensor/tensor.h"

namespace fourbit {

enum class NvFp4Role { packed, block_scale, global_scale, input_scale };

struct NvFp4TensorNames {
    std::string packed, block_scale, global_scale, input_scale;
    const std::string& of(NvFp4Role role) const;
};

// `format` must be an NVFP4 format.
NvFp4TensorNames nvfp4_tensor_names(QuantizationFormat format, const std::string& prefix);
// The planned dtype and shape of each tensor of a module of `rows` x `cols` weights.
Shape nvfp4_tensor_shape(QuantizationFormat format, NvFp4Role role, int64_t rows, int64_t cols);
DType nvfp4_tensor_dtype(NvFp4Role role);
// Splits a tensor name into module prefix and role when it is one of `format`'s NVFP4 names.
// ModelOpt's `P.weight` is ambiguous (BF16 modules use it too): it is reported as `packed`, and
// the caller checks the dtype.
std::optional<std::pair<std::string, NvFp4Role>> parse_nvfp4_tensor_name(QuantizationFormat format,
                                                                         std::string_view name);

// A scale as stored on disk: compressed-tensors keeps the reciprocal.
float stored_scale(QuantizationFormat format, float dequantize_scale);
float dequantize_scale(QuantizationFormat format, float stored);
// fl(1 / fl(1 / x)) == x: a scale that converts between the two layouts and back unchanged.
bool reciprocal_round_trips(float x);
// The smallest float >= x (x finite, > 0) that round-trips, so a writer can quantize with a
// scale both layouts store exactly. Usually x itself or a few ulps above.
float reciprocal_stable_scale(float x);

// How a checkpoint stores linear module `prefix` under `format`.
enum class LinearStorage { missing, dense, fp8_block, nvfp4 };
std::string_view linear_storage_name(LinearStorage storage);  // "missing", "bf16"/"f32", ...
LinearStorage linear_storage(const Checkpoint& checkpoint, QuantizationFormat format,
                             const std::string& prefix);

// One NVFP4 module, zero-copy, scales in the dequantize direction. `stored_*` keep the values
// as on disk (convert checks that they survive the other layout's reciprocal).
struct NvFp4Linear {
    Tensor packed;       // u8 [rows, cols / 2]
    Tensor block_scale;  // f8_e4m3 [rows, cols / 16]
    float global_scale = 0.0f;
    std::optional<float> input_scale;
    float stored_global_scale = 0.0f;
    std::optional<float> stored_input_scale;
};

// A problem found in a checkpoint: `subject` is the module or tensor, `kind` a short tag
// ("missing_tensor", "dtype", "shape", "scale", "k_not_multiple_of_16", ...), `message` the
// rest of the sentence. Loaders throw on the first; inspect lists them all.
struct CheckpointProblem {
    std::string kind;
    std::string subject;
    std::string message;
};
using ProblemSink = std::function<void(CheckpointProblem problem)>;

// Reads module `prefix` ([rows, cols] weights; cols from the model's shapes) and checks
// dtypes, shapes, K a multiple of 16, every block scale finite and non-negative (a NaN there is
// the failure a published checkpoint shipped), the global and input scales finite and
// positive in both directions. Reports every problem found to `problem`; returns nullopt when
// there was any.
std::optional<NvFp4Linear> read_nvfp4_linear(const Checkpoint& checkpoint,
                                             QuantizationFormat format, const std::string& prefix,
                                             int64_t rows, int64_t cols,
                                             const ProblemSink& problem);

// Writes a scalar scale tensor's bytes (f32, one element) for `format`.
void write_scale_bytes(QuantizationFormat format, float dequantize_scale, std::span<uint8_t> out);

}  // namespace fourbit
