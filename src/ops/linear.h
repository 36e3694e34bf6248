// linear: y = x @ W^T, the projection every layer is made of.
//   x  [n_tokens, k] f32, or bf16 (what linear_activation_dtype asks of the producer)
//   W  [n, k] in one of three formats:
//      dense      f32 or bf16
//      fp8_block  f8_e4m3 with a block scale (MiniMax's FP8: `weight_scale_inv`
//                 [ceil(n / block_rows), ceil(k / block_cols)] f32, a multiplier despite its name)
//      nvfp4      u8 [n, k / 2] of E2M1 codes (even column in the low nibble), an f8_e4m3
//                 scale per 16 columns [n, k / 16], and a global scale; weight-only numerics
//                 (f32 activations), or W4A4 emulated when asked
//   y  [n_tokens, n] f32, accumulated in f32
//
// On a CUDA device (weights moved there once by linear_weight_to):
//   dense bf16 / f32   up to 64 tokens, and at any count for weights up to 8 MiB (routers): a
//                      GEMV with x in f32, as on the CPU; beyond, cuBLAS, where bf16 weights
//                      multiply x rounded to bf16 (f32 accumulation)
//   nvfp4              the tiled layout (ops/nvfp4_tiles.h), weight-only: FP4 dequantized in the
//                      kernel, x rounded to bf16 for the tensor cores, f32 accumulation
//   fp8_block and W4A4 emulation have no CUDA kernels yet: a named error.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace fourbit {

enum class WeightFormat { dense, fp8_block, nvfp4 };

// How NVFP4 codes and scales are laid out: the checkpoint's rows, or the CUDA kernels' tiles
// (same shapes and byte counts, other order and scale encoding; ops/nvfp4_tiles.h).
enum class NvFp4Layout { rows, cuda_tiles };

struct LinearWeight {
    Tensor weight;           // dense, fp8_block: [n, k]; nvfp4: u8 [n, k / 2]
    Tensor block_scale;      // fp8_block: f32 [ceil(n / block_rows), ceil(k / block_cols)];
                             // nvfp4: f8_e4m3 [n, k / 16]
    int64_t block_rows = 0;  // fp8_block only
    int64_t block_cols = 0;
    float global_scale = 1.0f;  // nvfp4: ModelOpt's weight_scale_2 (dequantize direction)
    float input_scale = 0.0f;   // nvfp4: calibrated activation scale (amax / 2688); 0 if none
    // nvfp4 with an input_scale: quantize-dequantize x as W4A4 hardware would (evaluation).
    bool emulate_w4a4 = false;
    NvFp4Layout nvfp4_layout = NvFp4Layout::rows;

    // The format follows from the weight's dtype: u8 holds packed NVFP4 codes.
    WeightFormat format() const {
        if (weight.dtype() == DType::u8) return WeightFormat::nvfp4;
        if (weight.dtype() == DType::f8_e4m3) return WeightFormat::fp8_block;
        return WeightFormat::dense;
    }
    int64_t rows() const { return weight.dim(0); }
    int64_t cols() const {
        return format() == WeightFormat::nvfp4 ? 2 * weight.dim(1) : weight.dim(1);
    }
};

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y);

// The activations' dtype `weight` reads best: bf16 for NVFP4 in CUDA tiles, whose kernels round x
// to bf16 anyway (so a producer that writes bf16 changes no result and halves the bytes every
// GEMV CTA stages), f32 for everything else (other dtypes are widened to f32 first).
DType linear_activation_dtype(const LinearWeight& weight);

// A copy of host weights on `device`, in the layout that device's kernels read (NVFP4 is
// repacked into tiles for CUDA). Done once at load; the host weights stay as they were.
LinearWeight linear_weight_to(const LinearWeight& weight, Device device);

// Linears of one input stacked row-wise on a CUDA device (an attention layer's q, k and v): one
// kernel reads every part's weights and writes each part's output with the part's own global
// scale, instead of a launch per part. Made by stack_linears.
struct StackedLinear {
    LinearWeight weight;                     // every part's rows, NVFP4 tiles
    std::vector<int64_t> part_rows;          // in order
    std::vector<float> part_global_scales;
    bool defined() const { return weight.weight.defined(); }
};

// Stacks `parts` (1 to 3 NVFP4 weights in CUDA tiles on one device, the same columns) and makes
// each part a view of its rows in the stack, so the weights are held once. Anything else (dense
// or host weights) is left alone and an undefined StackedLinear returned.
StackedLinear stack_linears(const std::vector<LinearWeight*>& parts);

// *ys[i] = x W_i^T for each part i of `stacked` (ys.size() parts, shapes as linear's).
void linear_stacked(const Tensor& x, const StackedLinear& stacked, const std::vector<Tensor*>& ys);

namespace cpu {
void linear(const Tensor& x, const LinearWeight& weight, Tensor& y);
}
namespace cuda {
void linear(const Tensor& x, const LinearWeight& weight, Tensor& y);
void linear_stacked(const Tensor& x, const StackedLinear& stacked, const std::vector<Tensor*>& ys);
}

}  // namespace fourbit
