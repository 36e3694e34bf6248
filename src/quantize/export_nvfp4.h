// Export of a calibrated model as an NVFP4 checkpoint (nvfp4.md §1.4-§2): every quantized
// Linear's weight read from the source (BF16, F32 or MiniMax's FP8 blocks), quantized with
// ModelOpt's formulas under a global scale shared by its fused group (q/k/v, an expert's
// w1/w3), its input scale from the calibrated amax (ModelOpt amax / 2688; compressed-tensors
// stores 2688 / amax). Ignored modules stay BF16 (FP8 ones are dequantized). Configs for the
// layout, the source's shards kept, tokenizer and chat template copied. A scale that is not
// finite and positive, or a module without a calibrated amax, stops the export before anything
// is written under its final name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/quantization_scheme.h"
#include "quantize/quantized_modules.h"

namespace fourbit {

struct ExportRequest {
    std::string source_dir;
    std::string out_dir;  // shards, index and configs there are replaced
    QuantizationFormat format = QuantizationFormat::nvfp4_compressed_tensors;
    const QuantizationPlan* plan = nullptr;
    std::vector<float> input_amax;  // per plan module (its fused group's maximum is used)
};

struct ExportSummary {
    int64_t n_quantized = 0;
    int64_t n_tensors = 0;
    int64_t n_dequantized_fp8 = 0;  // ignored FP8 modules written as BF16
    std::vector<float> weight_amax;  // per plan module (0 for those not quantized)
    uint64_t bytes_written = 0;
};

ExportSummary export_nvfp4(const ExportRequest& request);

// Weight amax of every quantized module (max |W| of the dequantized source weight), in plan
// order, without writing anything; what export_nvfp4 uses.
std::vector<float> source_weight_amax(const std::string& source_dir, const QuantizationPlan& plan);

}  // namespace fourbit
