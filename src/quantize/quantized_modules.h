// Which linear modules a quantization run quantizes (every Linear the ignore list does not
// name), and the quantizer counts ModelOpt reports for the same model and list, so that a run
// can be checked against the published release (recipe.md §1: 92,640 active quantizers =
// 46,320 Linears x 2 for M2.7).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/module_pattern.h"
#include "formats/quantization_scheme.h"
#include "model/linear_modules.h"

namespace fourbit {

// The release's GB10 list: lm_head, the embeddings, every MoE router, all of the first and the
// last layer, in `format`'s spelling.
std::vector<std::string> default_ignore_list(const MiniMaxM2Config& config,
                                             QuantizationFormat format);

struct QuantizationPlan {
    std::vector<LinearModule> modules;  // every Linear, minimax_m2_linear_modules order
    std::vector<bool> quantized;        // per module
    std::vector<std::string> ignore;    // the ignore list as given (written to the config)
    int64_t n_layers = 0;

    int64_t n_linears() const { return static_cast<int64_t>(modules.size()); }
    int64_t n_quantized() const;
    // ModelOpt's accounting: an input, a weight and an output quantizer per Linear plus three
    // attention-matmul quantizers per layer are inserted; NVFP4_DEFAULT_CFG enables the input
    // and weight quantizers of the quantized Linears only.
    int64_t quantizers_inserted() const { return 3 * n_linears() + 3 * n_layers; }
    int64_t quantizers_active() const { return 2 * n_quantized(); }
    int64_t quantizers_disabled() const { return quantizers_inserted() - quantizers_active(); }
};

// `ignore`: patterns in any spelling (module_pattern.h). lm_head must stay unquantized: its
// input would need the logits of every calibration token (Error otherwise).
QuantizationPlan make_quantization_plan(const MiniMaxM2Config& config,
                                        const std::vector<std::string>& ignore);

}  // namespace fourbit
