#include "ops/moe.h"

#include <cmath>
#include <cstring>

#include "ops/device_dispatch.h"
#include "ops/nvfp4_tiles.h"
#include "ops/rms_norm.h"
#include "util/error.h"

namespace fourbit {

namespace {

// The routing arguments of `op` for n_tokens rows of n_experts scores: top k, the bias (f32 or
// bf16, or none) and the outputs. Returns the bias as the kernels take it: an empty one is "no
// bias" wherever it lives.
Tensor checked_routing(const char* op, int64_t n_tokens, int64_t n_experts, const Tensor& bias,
                       int64_t k, const Tensor& expert_ids, const Tensor& expert_weights) {
    FOURBIT_ASSERT(k > 0 && k <= n_experts, "{}: top {} of {}", op, k, n_experts);
    FOURBIT_ASSERT(!bias.defined() || bias.numel() == 0 ||
                       (bias.rank() == 1 && bias.dim(0) == n_experts &&
                        (bias.dtype() == DType::f32 || bias.dtype() == DType::bf16)),
                   "{}: bias {}", op, shape_text(bias.shape()));
    FOURBIT_ASSERT(expert_ids.dtype() == DType::i32 && expert_ids.shape() == Shape({n_tokens, k}) &&
                       expert_weights.dtype() == DType::f32 &&
                       expert_weights.shape() == Shape({n_tokens, k}),
                   "{}: outputs {} {}", op, shape_text(expert_ids.shape()),
                   shape_text(expert_weights.shape()));
    return bias.defined() && bias.numel() > 0 ? bias : Tensor();
}

}  // namespace

DType moe_activation_dtype(const GroupedExperts& experts) {
    return experts.nvfp4() ? DType::bf16 : DType::f32;
}

bool moe_grouped_pays(int64_t n_tokens, int64_t top_k, int64_t n_experts) {
    // From one slot per four experts (batch-8 decode on M2: 64 slots over ~57 distinct experts)
    // a pass per expert tile pays for the sort (four small kernels when measured, one now),
    // since the tiles stream at the decode kernels' rate (133189f). H200, the 8-layer slice's
    // decode at batch 8, three rounds in one call: 3,997 / 4,088 / 4,088 -> 4,082 / 4,129 / 4,146
    // tok/s (ab_h200_session27_grouped_at_8.txt; before 133189f the grouping lost 9% there). At
    // batch 16 (a slot per two experts: 128 slots over ~101) it saves a fifth of the bytes.
    return 4 * n_tokens * top_k >= n_experts;
}

void moe_route(const Tensor& router_logits, const Tensor& bias, int64_t k, Tensor& expert_ids,
               Tensor& expert_weights) {
    FOURBIT_ASSERT(router_logits.rank() == 2 && router_logits.dtype() == DType::f32,
                   "moe_route: logits {}", shape_text(router_logits.shape()));
    const int64_t n_tokens = router_logits.dim(0), n_experts = router_logits.dim(1);
    const Tensor placed_bias =
        checked_routing("moe_route", n_tokens, n_experts, bias, k, expert_ids, expert_weights);
    const Device device =
        op_device("moe_route", {&router_logits, &placed_bias, &expert_ids, &expert_weights});
    if (device.is_cuda()) {
        // The kernel keeps a score, a rank key and a quarter of a candidate (k <= 8 of each 32)
        // per expert in 48 KB of shared memory.
        if (k > 8 || n_experts > 2048) {
            fail("moe_route: top {} of {} experts on CUDA (at most top 8 of 2048)", k, n_experts);
        }
#ifdef FOURBIT_CUDA
        return cuda::moe_route(router_logits, placed_bias, k, expert_ids, expert_weights);
#else
        no_cuda_backend("moe_route", device);
#endif
    }
    cpu::moe_route(router_logits, bias, k, expert_ids, expert_weights);
}

void moe_router(Tensor& x, const Tensor& r, const Tensor& norm_weight, float eps,
                const LinearWeight& router, const Tensor& bias, int64_t k, Tensor& h,
                Tensor& logits, Tensor& expert_ids, Tensor& expert_weights, Tensor* h_rounded) {
    // The three ops check their own arguments; the fused kernel relies on the same checks, so
    // they are made here too where it may run.
    FOURBIT_ASSERT(x.rank() == 2 && x.dtype() == DType::f32 && r.shape() == x.shape() &&
                       r.dtype() == DType::f32 && h.shape() == x.shape() &&
                       h.dtype() == DType::f32 && h.raw() != x.raw() && h.raw() != r.raw(),
                   "moe_router: x {} r {} h {}", shape_text(x.shape()), shape_text(r.shape()),
                   shape_text(h.shape()));
    FOURBIT_ASSERT(norm_weight.rank() == 1 && norm_weight.dim(0) == x.dim(1) &&
                       (norm_weight.dtype() == DType::f32 || norm_weight.dtype() == DType::bf16),
                   "moe_router: norm weight {} for x {}", shape_text(norm_weight.shape()),
                   shape_text(x.shape()));
    const int64_t n_tokens = x.dim(0), n_experts = router.rows();
    FOURBIT_ASSERT(router.cols() == x.dim(1) && logits.dtype() == DType::f32 &&
                       logits.shape() == Shape({n_tokens, n_experts}),
                   "moe_router: router {} logits {} for x {}", shape_text(router.weight.shape()),
                   shape_text(logits.shape()), shape_text(x.shape()));
    const Tensor placed_bias =
        checked_routing("moe_router", n_tokens, n_experts, bias, k, expert_ids, expert_weights);
    if (h_rounded != nullptr) {
        FOURBIT_ASSERT(h_rounded->dtype() == DType::bf16 && h_rounded->shape() == h.shape() &&
                           h_rounded->raw() != x.raw() && h_rounded->raw() != r.raw(),
                       "moe_router: h {} and its rounding {} {}", shape_text(h.shape()),
                       shape_text(h_rounded->shape()), dtype_name(h_rounded->dtype()));
    }
    // h_rounded, when given, must be where the rest is (h stands in for it otherwise).
    const Device device = op_device(
        "moe_router", {&x, &r, &norm_weight, &router.weight, &placed_bias, &h, &logits, &expert_ids,
                       &expert_weights, h_rounded != nullptr ? h_rounded : &h});
#ifdef FOURBIT_CUDA
    if (device.is_cuda() && cuda::moe_router(x, r, norm_weight, eps, router, placed_bias, k, h,
                                             logits, expert_ids, expert_weights, h_rounded)) {
        return;
    }
#else
    (void)device;
#endif
    add_rms_norm(x, r, norm_weight, eps, h, h_rounded);
    linear(h, router, logits);
    moe_route(logits, placed_bias, k, expert_ids, expert_weights);
}

namespace {

void check_moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                       const Tensor& out) {
    FOURBIT_ASSERT(h.rank() == 2 && out.shape() == h.shape() && out.dtype() == DType::f32,
                   "moe_experts: h {} out {}", shape_text(h.shape()), shape_text(out.shape()));
    FOURBIT_ASSERT(expert_ids.rank() == 2 && expert_ids.dim(0) == h.dim(0) &&
                       expert_weights.shape() == expert_ids.shape(),
                   "moe_experts: routing {} for h {}", shape_text(expert_ids.shape()),
                   shape_text(h.shape()));
    FOURBIT_ASSERT(expert_ids.dtype() == DType::i32 && expert_weights.dtype() == DType::f32,
                   "moe_experts: ids {} weights {}", dtype_name(expert_ids.dtype()),
                   dtype_name(expert_weights.dtype()));
}

}  // namespace

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 std::span<const ExpertWeights> experts, Tensor& out) {
    check_moe_experts(h, expert_ids, expert_weights, out);
    FOURBIT_ASSERT(h.dtype() == DType::f32, "moe_experts: h {} for experts on the host (f32)",
                   dtype_name(h.dtype()));
    const Device device = op_device("moe_experts", {&h, &expert_ids, &expert_weights, &out});
    if (device.is_cuda()) {
        fail("moe_experts: tensors on {} take experts grouped there once (group_experts)",
             device_text(device));
    }
    for (const ExpertWeights& expert : experts) {
        FOURBIT_ASSERT(expert.gate.cols() == h.dim(1) && expert.up.cols() == h.dim(1) &&
                           expert.down.rows() == h.dim(1) &&
                           expert.down.cols() == expert.gate.rows() &&
                           expert.up.rows() == expert.gate.rows(),
                       "moe_experts: expert shapes do not match hidden {}", h.dim(1));
    }
    cpu::moe_experts(h, expert_ids, expert_weights, experts, out);
}

void moe_experts(const Tensor& h, const Tensor& expert_ids, const Tensor& expert_weights,
                 const GroupedExperts& experts, Tensor& out) {
    check_moe_experts(h, expert_ids, expert_weights, out);
    FOURBIT_ASSERT(h.dtype() == DType::f32 || h.dtype() == DType::bf16,
                   "moe_experts: h {} (f32 or bf16)", dtype_name(h.dtype()));
    const Device device = op_device(
        "moe_experts",
        {&h, &expert_ids, &expert_weights, &out, &experts.gate_up_codes, &experts.gate_up_dense});
    if (!device.is_cuda()) {
        fail("moe_experts: grouped experts run on CUDA only; host tensors take the expert list");
    }
    FOURBIT_ASSERT(h.dim(1) == experts.hidden, "moe_experts: h {} for experts of hidden {}",
                   shape_text(h.shape()), experts.hidden);
    if (expert_ids.dim(1) > 8) {
        fail("moe_experts: top {} on CUDA (the grouped kernels take at most 8)",
             expert_ids.dim(1));
    }
    if (experts.n_experts() > kMaxGroupedExperts) {
        fail("moe_experts: {} experts on CUDA (the grouping takes at most {})", experts.n_experts(),
             kMaxGroupedExperts);
    }
#ifdef FOURBIT_CUDA
    cuda::moe_experts(h, expert_ids, expert_weights, experts, out);
#else
    no_cuda_backend("moe_experts", device);
#endif
}

namespace {

// The dense form: every expert's gate and up rows, then its down rows, stacked in one dtype.
GroupedExperts group_dense_experts(std::span<const ExpertWeights> experts, Device device) {
    const ExpertWeights& first = experts.front();
    const DType dtype = first.gate.weight.dtype();
    const int64_t n_experts = static_cast<int64_t>(experts.size());
    const int64_t hidden = first.gate.cols(), intermediate = first.gate.rows();
    const size_t element = dtype_size_bytes(dtype);
    Tensor gate_up = Tensor::zeros(dtype, {n_experts, 2 * intermediate, hidden});
    Tensor down = Tensor::zeros(dtype, {n_experts, hidden, intermediate});
    const size_t matrix_bytes = static_cast<size_t>(intermediate * hidden) * element;
    for (int64_t e = 0; e < n_experts; ++e) {
        auto* gate_up_bytes = gate_up.data<uint8_t>() + 2 * e * matrix_bytes;
        std::memcpy(gate_up_bytes, experts[e].gate.weight.raw(), matrix_bytes);
        std::memcpy(gate_up_bytes + matrix_bytes, experts[e].up.weight.raw(), matrix_bytes);
        std::memcpy(down.data<uint8_t>() + e * matrix_bytes, experts[e].down.weight.raw(),
                    matrix_bytes);
    }
    GroupedExperts grouped;
    grouped.gate_up_dense = gate_up.to(device);
    grouped.down_dense = down.to(device);
    grouped.hidden = hidden;
    grouped.intermediate = intermediate;
    grouped.count = n_experts;
    return grouped;
}

}  // namespace

GroupedExperts group_experts(std::span<const ExpertWeights> experts, Device device) {
    FOURBIT_ASSERT(!experts.empty() && device.is_cuda(), "group_experts: experts onto CUDA");
    const ExpertWeights& first = experts.front();
    const int64_t n_experts = static_cast<int64_t>(experts.size());
    const int64_t hidden = first.gate.cols(), intermediate = first.gate.rows();
    const DType dtype = first.gate.weight.dtype();
    const bool nvfp4 = first.gate.format() == WeightFormat::nvfp4;
    if (!nvfp4 && dtype != DType::bf16 && dtype != DType::f32) {
        fail("group_experts: expert 0 is {}; the CUDA MoE kernels take NVFP4, bf16 or f32 experts",
             dtype_name(dtype));
    }
    for (size_t e = 0; e < experts.size(); ++e) {
        const ExpertWeights& expert = experts[e];
        for (const LinearWeight* w : {&expert.gate, &expert.up, &expert.down}) {
            if (w->weight.dtype() != dtype || !w->weight.device().is_host() ||
                (nvfp4 && w->nvfp4_layout != NvFp4Layout::rows)) {
                fail("group_experts: expert {} is {} where expert 0 is {} (all experts of a layer "
                     "on the host, in one format, NVFP4 in checkpoint layout)",
                     e, dtype_name(w->weight.dtype()), dtype_name(dtype));
            }
        }
        FOURBIT_ASSERT(expert.gate.cols() == hidden && expert.up.cols() == hidden &&
                           expert.gate.rows() == intermediate && expert.up.rows() == intermediate &&
                           expert.down.rows() == hidden && expert.down.cols() == intermediate,
                       "group_experts: expert {} differs in shape from expert 0", e);
    }
    if (!nvfp4) return group_dense_experts(experts, device);
    Tensor gate_up_codes = Tensor::zeros(DType::u8, {n_experts, 2 * intermediate, hidden / 2});
    Tensor gate_up_scales = Tensor::zeros(DType::u8, {n_experts, 2 * intermediate, hidden / 16});
    Tensor down_codes = Tensor::zeros(DType::u8, {n_experts, hidden, intermediate / 2});
    Tensor down_scales = Tensor::zeros(DType::u8, {n_experts, hidden, intermediate / 16});
    Tensor out_scales = Tensor::zeros(DType::f32, {n_experts, 3});
    auto rows_of = [](const LinearWeight& w) {
        const int64_t k = w.cols();
        return [&w, k](int64_t r) {
            return NvFp4SourceRow{w.weight.data<uint8_t>() + r * (k / 2),
                                  w.block_scale.data<uint8_t>() + r * (k / 16)};
        };
    };
    for (int64_t e = 0; e < n_experts; ++e) {
        const ExpertWeights& expert = experts[e];
        auto gate_rows = rows_of(expert.gate), up_rows = rows_of(expert.up);
        // Fused stripe s: gate rows 8s..8s+7, then up rows 8s..8s+7.
        nvfp4_to_tiles(
            2 * intermediate, hidden,
            [&](int64_t r) {
                const int64_t source = (r / 16) * 8 + r % 8;
                return r % 16 < 8 ? gate_rows(source) : up_rows(source);
            },
            gate_up_codes.data<uint8_t>() + e * intermediate * hidden,
            gate_up_scales.data<uint8_t>() + e * intermediate * hidden / 8, "group_experts gate/up");
        nvfp4_to_tiles(hidden, intermediate, rows_of(expert.down),
                       down_codes.data<uint8_t>() + e * hidden * intermediate / 2,
                       down_scales.data<uint8_t>() + e * hidden * intermediate / 16,
                       "group_experts down");
        float* scales = out_scales.data<float>() + e * 3;
        scales[0] = std::ldexp(expert.gate.global_scale, kNvFp4TileExponent);
        scales[1] = std::ldexp(expert.up.global_scale, kNvFp4TileExponent);
        scales[2] = std::ldexp(expert.down.global_scale, kNvFp4TileExponent);
    }
    GroupedExperts grouped;
    grouped.gate_up_codes = gate_up_codes.to(device);
    grouped.gate_up_scales = gate_up_scales.to(device);
    grouped.down_codes = down_codes.to(device);
    grouped.down_scales = down_scales.to(device);
    grouped.out_scales = out_scales.to(device);
    grouped.hidden = hidden;
    grouped.intermediate = intermediate;
    grouped.count = n_experts;
    return grouped;
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
    FOURBIT_ASSERT(gate.shape() == up.shape() && out.shape() == gate.shape() &&
                       gate.dtype() == DType::f32 && up.dtype() == DType::f32 &&
                       out.dtype() == DType::f32,
                   "swiglu: gate {} up {} out {}", shape_text(gate.shape()), shape_text(up.shape()),
                   shape_text(out.shape()));
    cpu::swiglu(gate, up, out);
}

}  // namespace fourbit
