#include "ops/linear.h"

#include "ops/device_dispatch.h"
#include "ops/nvfp4_tiles.h"
#include "util/error.h"

namespace fourbit {

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    const Tensor& w = weight.weight;
    FOURBIT_ASSERT(x.rank() == 2 && w.rank() == 2 && y.rank() == 2, "linear takes matrices");
    FOURBIT_ASSERT((x.dtype() == DType::f32 || x.dtype() == DType::bf16) && y.dtype() == DType::f32,
                   "linear: x {} and y {} (f32 or bf16 in, f32 out)", dtype_name(x.dtype()),
                   dtype_name(y.dtype()));
    FOURBIT_ASSERT(x.dim(1) == weight.cols(), "linear: x {} against W {}", shape_text(x.shape()),
                   shape_text(w.shape()));
    FOURBIT_ASSERT(y.dim(0) == x.dim(0) && y.dim(1) == w.dim(0), "linear: y {} for x {}, W {}",
                   shape_text(y.shape()), shape_text(x.shape()), shape_text(w.shape()));
    switch (w.dtype()) {
        case DType::f32:
        case DType::bf16:
            break;
        case DType::f8_e4m3: {
            const Tensor& s = weight.block_scale;
            FOURBIT_ASSERT(weight.block_rows > 0 && weight.block_cols > 0 && s.rank() == 2 &&
                               s.dtype() == DType::f32 &&
                               s.dim(0) == (w.dim(0) + weight.block_rows - 1) / weight.block_rows &&
                               s.dim(1) == (w.dim(1) + weight.block_cols - 1) / weight.block_cols,
                           "linear: fp8 block scale {} does not tile W {}", shape_text(s.shape()),
                           shape_text(w.shape()));
            break;
        }
        case DType::u8: {
            const Tensor& s = weight.block_scale;
            FOURBIT_ASSERT(weight.cols() % 16 == 0 && s.dtype() == DType::f8_e4m3 &&
                               s.shape() == Shape({w.dim(0), weight.cols() / 16}),
                           "linear: nvfp4 block scale {} does not tile W {}", shape_text(s.shape()),
                           shape_text(w.shape()));
            FOURBIT_ASSERT(weight.global_scale > 0.0f, "linear: nvfp4 global scale {}",
                           weight.global_scale);
            FOURBIT_ASSERT(!weight.emulate_w4a4 || weight.input_scale > 0.0f,
                           "linear: W4A4 emulation needs an input scale");
            break;
        }
        default:
            FOURBIT_ASSERT(false, "linear: no kernel for weights of dtype {}",
                           dtype_name(w.dtype()));
    }
    const Device device = op_device("linear", {&x, &w, &weight.block_scale, &y});
    if (device.is_cuda()) {
        if (w.dtype() == DType::f8_e4m3 || weight.emulate_w4a4 ||
            (w.dtype() == DType::u8 && weight.nvfp4_layout != NvFp4Layout::cuda_tiles)) {
            fail("linear: no CUDA kernel for {} weights {}{} (dense bf16/f32 and tiled NVFP4 "
                 "only; move weights with linear_weight_to)",
                 dtype_name(w.dtype()), shape_text(w.shape()),
                 weight.emulate_w4a4 ? " with W4A4 emulation" : "");
        }
#ifdef FOURBIT_CUDA
        return cuda::linear(x, weight, y);
#else
        no_cuda_backend("linear", device);
#endif
    }
    FOURBIT_ASSERT(weight.nvfp4_layout == NvFp4Layout::rows,
                   "linear: NVFP4 in the CUDA tile layout on the host");
    cpu::linear(x, weight, y);
}

DType linear_activation_dtype(const LinearWeight& weight) {
    return weight.format() == WeightFormat::nvfp4 &&
                   weight.nvfp4_layout == NvFp4Layout::cuda_tiles && !weight.emulate_w4a4
               ? DType::bf16
               : DType::f32;
}

StackedLinear stack_linears(const std::vector<LinearWeight*>& parts) {
    FOURBIT_ASSERT(!parts.empty() && parts.size() <= 3, "stack_linears: 1 to 3 parts, not {}",
                   parts.size());
    const LinearWeight& first = *parts.front();
    for (const LinearWeight* part : parts) {
        const bool tiles = part->format() == WeightFormat::nvfp4 &&
                           part->nvfp4_layout == NvFp4Layout::cuda_tiles &&
                           !part->emulate_w4a4;
        if (!tiles || part->weight.device() != first.weight.device() ||
            part->cols() != first.cols()) {
            return {};
        }
    }
    int64_t rows = 0;
    for (const LinearWeight* part : parts) rows += part->rows();
    const Device device = first.weight.device();
    StackedLinear stacked;
    stacked.weight = first;
    stacked.weight.weight = Tensor::zeros(DType::u8, {rows, first.weight.dim(1)}, device);
    stacked.weight.block_scale = Tensor::zeros(DType::f8_e4m3, {rows, first.block_scale.dim(1)}, device);
    // The tiles are stripe-major, so a part's rows (a multiple of 16) are one run of bytes.
    int64_t row = 0;
    for (LinearWeight* part : parts) {
        const int64_t n = part->rows();
        Tensor codes = stacked.weight.weight.rows(row, n);
        Tensor scales = stacked.weight.block_scale.rows(row, n);
        codes.copy_from(part->weight);
        scales.copy_from(part->block_scale);
        part->weight = codes;
        part->block_scale = scales;
        stacked.part_rows.push_back(n);
        stacked.part_global_scales.push_back(part->global_scale);
        row += n;
    }
    return stacked;
}

void linear_stacked(const Tensor& x, const StackedLinear& stacked, const std::vector<Tensor*>& ys) {
    FOURBIT_ASSERT(stacked.defined() && ys.size() == stacked.part_rows.size(),
                   "linear_stacked: {} outputs for {} parts", ys.size(), stacked.part_rows.size());
    std::vector<const Tensor*> operands{&x, &stacked.weight.weight, &stacked.weight.block_scale};
    for (size_t p = 0; p < ys.size(); ++p) {
        FOURBIT_ASSERT(ys[p]->dtype() == DType::f32 && ys[p]->rank() == 2 &&
                           ys[p]->dim(0) == x.dim(0) && ys[p]->dim(1) == stacked.part_rows[p],
                       "linear_stacked: output {} is {} for {} tokens of {} rows", p,
                       shape_text(ys[p]->shape()), x.dim(0), stacked.part_rows[p]);
        operands.push_back(ys[p]);
    }
    FOURBIT_ASSERT((x.dtype() == DType::f32 || x.dtype() == DType::bf16) && x.rank() == 2 &&
                       x.dim(1) == stacked.weight.cols(),
                   "linear_stacked: x {} against W {}", shape_text(x.shape()),
                   shape_text(stacked.weight.weight.shape()));
    const Device device = op_device("linear_stacked", operands);
#ifdef FOURBIT_CUDA
    if (device.is_cuda()) return cuda::linear_stacked(x, stacked, ys);
#endif
    fail("linear_stacked: stacked linears are a CUDA layout; {} has no kernel for them",
         device_text(device));
}

LinearWeight linear_weight_to(const LinearWeight& weight, Device device) {
    const Tensor& w = weight.weight;
    FOURBIT_ASSERT(w.device().is_host() && weight.nvfp4_layout == NvFp4Layout::rows,
                   "linear_weight_to: weights move from the host, in checkpoint layout");
    LinearWeight moved = weight;
    if (device.is_host()) return moved;
    if (weight.format() == WeightFormat::fp8_block) {
        fail("linear_weight_to: FP8 block weights {} have no CUDA kernel yet",
             shape_text(w.shape()));
    }
    if (weight.format() == WeightFormat::dense) {
        moved.weight = w.to(device);
        return moved;
    }
    Tensor codes = Tensor::zeros(DType::u8, w.shape());
    Tensor scales = Tensor::zeros(DType::f8_e4m3, weight.block_scale.shape());
    const int64_t k = weight.cols();
    nvfp4_to_tiles(
        weight.rows(), k,
        [&](int64_t r) {
            return NvFp4SourceRow{w.data<uint8_t>() + r * (k / 2),
                                  weight.block_scale.data<uint8_t>() + r * (k / 16)};
        },
        codes.data<uint8_t>(), scales.data<uint8_t>(), "linear_weight_to");
    moved.weight = codes.to(device);
    moved.block_scale = scales.to(device);
    moved.nvfp4_layout = NvFp4Layout::cuda_tiles;
    return moved;
}

}  // namespace fourbit
