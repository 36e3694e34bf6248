// moe_router on CUDA for a decode step's few tokens: add_rms_norm, the router's exact GEMV and
// moe_route in one kernel instead of three, each of which was mostly launch and latency at one
// token (ncu, H200: 3.3 + 6.1 + 6.9 us for ~1.5 MB of router weights). Bitwise the three ops'
// values: the norm is add_rms_norm_kernel's arithmetic (ops/cuda/norm_rope.cuh), the dot
// products the exact GEMV's (ops/cuda/exact_dot.cuh), the routing route_kernel's
// (ops/cuda/route_top_k.cuh).
//
// Every CTA normalises the tokens' rows itself (they are in L2, and a CTA needs all of h for its
// router rows), writes its share of h (f32, and bf16 where asked: the NVFP4 experts' input),
// then computes kRowsPerCta logits; the last CTA to finish routes every token and writes x. "Last"
// is counted on a device-global counter that each launch leaves at zero, so the kernel is
// graph-capturable without a memset; two of these kernels must not run at once on one device (each
// device's model steps run on one stream).
#include <type_traits>

#include "ops/cuda/device_attribute.h"
#include "ops/cuda/exact_dot.cuh"
#include "ops/cuda/norm_rope.cuh"
#include "ops/cuda/route_top_k.cuh"
#include "ops/cuda/stream.h"
#include "ops/moe.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

constexpr int kRowsPerCta = 4;     // router rows a CTA (warps 0..3, a row each): M2 takes 64 CTAs
constexpr int kNormPerThread = 4;  // rows up to 4 x kNormThreads = 4,096 wide
constexpr int kMaxExperts = 512;   // the scores' shared memory
constexpr int kMaxTokens = kMaxFusedRouterTokens;

__device__ unsigned int finished_ctas = 0;

struct RouterParams {
    float* x;        // [m, d], updated in place
    const float* r;  // [m, d]
    float eps;
    int m, d, n, k;  // tokens, hidden, experts, top k
    float* h;        // [m, d]
    __nv_bfloat16* h_rounded;  // [m, d] h rounded to bf16, or nullptr
    float* logits;   // [m, n]
    int32_t* ids;    // [m, k]
    float* weights;  // [m, k]
};

// Dynamic shared memory: the routing's keys and candidates (ops/cuda/route_top_k.cuh), then
// the updated x rows, the h rows and each token's scores.
size_t router_shared_bytes(int m, int d, int n, int k) {
    return RouteLayout(n, k).key_bytes(m) + static_cast<size_t>(2 * m * d + m * n) * sizeof(float);
}

// kNormRows: the rows its norm takes at once, 1 for one token or kMaxTokens from 2 on. One
// token's kernel is the one from before the rows' form (its sm_90a SASS is identical): the two
// forms in one kernel made one token's 0.26 us slower (64 registers against 60), and a kernel
// sized for one token throughout (the dot products' sums too) 1.4 us slower (H200).
template <int kNormRows, typename NormWeight, typename RouterWeight, typename Bias>
__global__ void __launch_bounds__(kNormThreads)
    router_kernel(RouterParams p, const NormWeight* norm_weight, const RouterWeight* router,
                  const Bias* bias) {
    extern __shared__ __align__(16) uint64_t shared_keys[];  // 16: count_above reads key pairs
    const RouteLayout at(p.n, p.k);
    uint64_t* keys = shared_keys;
    uint64_t* candidates = keys + p.m * at.key_stride();
    float* x_rows = reinterpret_cast<float*>(candidates + p.m * at.candidate_stride());
    float* h_rows = x_rows + p.m * p.d;
    float* scores = h_rows + p.m * p.d;
    __shared__ std::conditional_t<kNormRows == 1, RmsShared, RmsRowsShared<kNormRows>> reduction;
    __shared__ uint64_t best[kMaxTokens][8];
    __shared__ int chosen[kMaxTokens][8];
    __shared__ float picked[kMaxTokens][8];
    __shared__ bool last;

    // x + r and its norm into shared memory (x itself is written at the end): several tokens'
    // rows at once (4 tokens of M2: the kernel 15.0 -> 13.8 us in the decode graph, H200).
    if constexpr (kNormRows == 1) {
        // Written as the loop over rows it was (m is 1 here): called once outside a loop, ptxas
        // spills 8 bytes of the kernel.
        for (int t = 0; t < p.m; ++t) {
            add_rms_norm_row<kNormPerThread>(p.x + t * p.d, p.r + t * p.d, norm_weight, p.eps, p.d,
                                             x_rows + t * p.d, h_rows + t * p.d, reduction);
            __syncthreads();  // `reduction` is reused; h is complete for the dot products
        }
    } else {
        add_rms_norm_rows<kNormPerThread>(p.x, p.r, norm_weight, p.eps, p.d, p.m, x_rows, h_rows,
                                          reduction);
        __syncthreads();  // h is complete for the dot products
    }
    // h is read by no other CTA here (each has its own), so each writes its share now, off the
    // last CTA's tail.
    const int share = (p.m * p.d + gridDim.x - 1) / gridDim.x;
    const int share_end = min(p.m * p.d, (static_cast<int>(blockIdx.x) + 1) * share);
    for (int i = blockIdx.x * share + threadIdx.x; i < share_end; i += kNormThreads) {
        p.h[i] = h_rows[i];
        if (p.h_rounded != nullptr) p.h_rounded[i] = __float2bfloat16_rn(h_rows[i]);
    }

    // This CTA's router rows.
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * kRowsPerCta + warp;
    if (warp < kRowsPerCta && row < p.n) {
        float sum[kMaxTokens];
        exact_row_dots<kMaxTokens, 6>(router + static_cast<int64_t>(row) * p.d, h_rows, p.d, p.m,
                                      p.d, SharedRows{}, sum);
        if (lane == 0) {
#pragma unroll
            for (int t = 0; t < kMaxTokens; ++t) {
                if (t < p.m) p.logits[t * p.n + row] = sum[t];
            }
        }
    }

    // The last CTA here sees every CTA's logits (each fenced its writes before it counted).
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&finished_ctas, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    // From L2 (__ldcg): other SMs wrote these, and this SM's L1 is not coherent with them.
    route_scores([&](int t, int e) { return __ldcg(p.logits + t * p.n + e); }, bias, at, p.m,
                 scores, keys);
    __syncthreads();
    route_choose(scores, keys, candidates, at, p.m, best, chosen, picked, p.ids, p.weights);
    // x was read by every CTA; all have counted, so it can be overwritten now.
    for (int i = threadIdx.x; i < p.m * p.d; i += kNormThreads) p.x[i] = x_rows[i];
    if (threadIdx.x == 0) finished_ctas = 0;
}

// Launches the kernel, or returns false when its shared memory is more than the device allows
// a CTA (m = 4 tokens of M2 take ~110 KB: an sm_120 card allows 99 KB; opt_in_shared_memory
// refuses them), so that the caller runs the three ops instead.
template <typename NormWeight, typename RouterWeight, typename Bias>
bool launch_router(const RouterParams& params, const NormWeight* norm_weight,
                   const RouterWeight* router, const Bias* bias) {
    const auto kernel = params.m == 1 ? router_kernel<1, NormWeight, RouterWeight, Bias>
                                      : router_kernel<kMaxTokens, NormWeight, RouterWeight, Bias>;
    const size_t bytes = router_shared_bytes(params.m, params.d, params.n, params.k);
    const cudaError_t status = opt_in_shared_memory(kernel, bytes);
    if (status == cudaErrorInvalidValue) return false;
    FOURBIT_CUDA_CHECK(status);
    const unsigned blocks = static_cast<unsigned>((params.n + kRowsPerCta - 1) / kRowsPerCta);
    kernel<<<blocks, kNormThreads, bytes, current_stream()>>>(params, norm_weight, router, bias);
    FOURBIT_CUDA_CHECK_LAUNCH();
    return true;
}

}  // namespace

bool moe_router(Tensor& x, const Tensor& r, const Tensor& norm_weight, float eps,
                const LinearWeight& router, const Tensor& bias, int64_t k, Tensor& h,
                Tensor& logits, Tensor& ids, Tensor& weights, Tensor* h_rounded) {
    const int64_t m = x.dim(0), d = x.dim(1), n = router.rows();
    const DType router_dtype = router.weight.dtype();
    const bool dense = router_dtype == DType::bf16 || router_dtype == DType::f32;
    // Router rows must start 16-byte aligned for the dot products' vector loads.
    const bool aligned = d % (router_dtype == DType::bf16 ? 8 : 4) == 0;
    if (m < 1 || m > kMaxTokens || !dense || !aligned || d > kNormPerThread * kNormThreads ||
        n > kMaxExperts || k > 8) {
        return false;
    }
    DeviceScope scope(x.device().index);
    const RouterParams params{x.data<float>(),
                              r.data<float>(),
                              eps,
                              static_cast<int>(m),
                              static_cast<int>(d),
                              static_cast<int>(n),
                              static_cast<int>(k),
                              h.data<float>(),
                              h_rounded != nullptr ? h_rounded->data<__nv_bfloat16>() : nullptr,
                              logits.data<float>(),
                              ids.data<int32_t>(),
                              weights.data<float>()};
    const bool has_bias = bias.defined() && bias.numel() > 0;
    bool launched = false;
    with_norm_weight(norm_weight, [&](const auto* norm) {
        auto with_bias = [&](auto* router_rows) {
            if (!has_bias) {
                launched =
                    launch_router(params, norm, router_rows, static_cast<const float*>(nullptr));
            } else if (bias.dtype() == DType::bf16) {
                launched = launch_router(params, norm, router_rows, bias.data<uint16_t>());
            } else {
                launched = launch_router(params, norm, router_rows, bias.data<float>());
            }
        };
        if (router_dtype == DType::bf16) {
            with_bias(router.weight.data<__nv_bfloat16>());
        } else {
            with_bias(router.weight.data<float>());
        }
    });
    return launched;
}

}  // namespace fourbit::cuda
