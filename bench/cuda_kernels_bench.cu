// GPU kernel benchmarks, METHOD.md's way: the card's copy bandwidth first (the ceiling of
// every decode kernel), then the NVFP4 GEMV ladder at MiniMax-M2.7's shapes for 1..16 tokens
// (the production op, and variants of its kernel: loads in flight per warp; at one token also
// the same call with its weights in L2, and the same bytes read with no math), the BF16 op
// for comparison, and one MoE layer's decode step (input norm, router, top 8, experts) at 1, 4 and
// 32 tokens (the last through the grouped kernels) against its byte floor (and, at one token, a
// bare read of the 8 experts' gate/up and down bytes), then one layer's paged
// attention at MiniMax-M2's shape over f32 and bf16 caches (prefill in TFLOP/s of the useful
// products, decode against the bytes of its keys and values). Every timed region is a CUDA
// graph of many calls over distinct weights (several times the L2), replayed; the median replay
// counts. Prints a markdown table; writes JSON to argv[1]. With --profile instead: three
// untimed calls of the q_proj GEMV at one token, for ncu; with --attention: the attention table
// alone, or with --attention <text> its rows whose step and cache name contain <text> (one
// case for ncu: "decode at 32K | bf16"); with --moe: the MoE table alone.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/cuda/device_attribute.h"
#include "ops/cuda/nvfp4_gemv.cuh"
#include "ops/cuda/round_bf16.h"
#include "ops/cuda/stream.h"
#include "ops/cuda/streaming_load.cuh"
#include "ops/linear.h"
#include "ops/moe.h"
#include "ops/nvfp4_tiles.h"
#include "ops/random_fill.h"
#include "tensor/cuda_check.h"
#include "tensor/tensor.h"

namespace fourbit {
namespace {

const Device kGpu = Device::cuda(0);
constexpr double kWorkingSetBytes = 1024.0 * 1024 * 1024;  // > 16x the H100/H200 L2
constexpr int kReplays = 7;

// ---- random device data ------------------------------------------------------------------

__device__ uint32_t hash32(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return static_cast<uint32_t>(x);
}

// Tile codes: any bytes are valid. Tile scales: E5M3 codes of 2^-6 .. 2^5 (ops/nvfp4_tiles.h).
__global__ void fill_tiles(uint8_t* codes, int64_t n_codes, uint8_t* scales, int64_t n_scales,
                           uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_codes;
         i += int64_t(gridDim.x) * blockDim.x) {
        codes[i] = static_cast<uint8_t>(hash32(seed * 0x9e3779b97f4a7c15ull + i));
        if (i < n_scales) {
            const uint32_t h = hash32(~seed * 0x9e3779b97f4a7c15ull + i);
            scales[i] = static_cast<uint8_t>((((h % 12) + 4) << 3) | ((h >> 8) & 7));
        }
    }
}

__global__ void fill_f32(float* x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        x[i] =
            scale *
            (static_cast<float>(hash32(seed * 0x9e3779b97f4a7c15ull + i) % 2001) / 1000.0f - 1.0f);
    }
}

__global__ void fill_bf16(uint16_t* x, int64_t n, uint64_t seed) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const float v = 0.05f * (static_cast<float>(hash32(seed + i) % 2001) / 1000.0f - 1.0f);
        x[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);
    }
}

Tensor random_f32(Shape shape, uint64_t seed, float scale = 1.0f) {
    Tensor t = Tensor::zeros(DType::f32, std::move(shape), kGpu);
    fill_f32<<<1024, 256>>>(t.data<float>(), t.numel(), seed, scale);
    FOURBIT_CUDA_CHECK_LAUNCH();
    return t;
}

LinearWeight random_tiled_nvfp4(int64_t n, int64_t k, uint64_t seed) {
    LinearWeight w;
    w.weight = Tensor::zeros(DType::u8, {n, k / 2}, kGpu);
    w.block_scale = Tensor::zeros(DType::f8_e4m3, {n, k / 16}, kGpu);
    fill_tiles<<<1024, 256>>>(w.weight.data<uint8_t>(), w.weight.numel(),
                              w.block_scale.data<uint8_t>(), w.block_scale.numel(), seed);
    FOURBIT_CUDA_CHECK_LAUNCH();
    w.global_scale = 0.01f;
    w.nvfp4_layout = NvFp4Layout::cuda_tiles;
    return w;
}

LinearWeight random_bf16(int64_t n, int64_t k, uint64_t seed) {
    LinearWeight w;
    w.weight = Tensor::zeros(DType::bf16, {n, k}, kGpu);
    fill_bf16<<<1024, 256>>>(w.weight.data<uint16_t>(), w.weight.numel(), seed);
    FOURBIT_CUDA_CHECK_LAUNCH();
    return w;
}

double weight_bytes(const LinearWeight& w) {
    return static_cast<double>(w.weight.size_bytes() +
                               (w.block_scale.defined() ? w.block_scale.size_bytes() : 0));
}

// ---- timing ------------------------------------------------------------------------------

// Median seconds per call of `calls` calls of body(i), captured once as a graph on a stream of
// its own and replayed; one eager pass first (module load, cuBLAS setup, workspace).
double seconds_per_call(int calls, const std::function<void(int)>& body) {
    cudaStream_t stream;
    FOURBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    double result = 0;
    {
        cuda::StreamScope scope(stream);
        for (int i = 0; i < calls; ++i) body(i);
        FOURBIT_CUDA_CHECK(cudaStreamSynchronize(stream));
        cudaGraph_t graph;
        FOURBIT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < calls; ++i) body(i);
        FOURBIT_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        cudaGraphExec_t exec;
        FOURBIT_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        FOURBIT_CUDA_CHECK(cudaGraphLaunch(exec, stream));
        cudaEvent_t start, stop;
        FOURBIT_CUDA_CHECK(cudaEventCreate(&start));
        FOURBIT_CUDA_CHECK(cudaEventCreate(&stop));
        std::vector<double> times;
        for (int r = 0; r < kReplays; ++r) {
            FOURBIT_CUDA_CHECK(cudaEventRecord(start, stream));
            FOURBIT_CUDA_CHECK(cudaGraphLaunch(exec, stream));
            FOURBIT_CUDA_CHECK(cudaEventRecord(stop, stream));
            FOURBIT_CUDA_CHECK(cudaEventSynchronize(stop));
            float ms = 0;
            FOURBIT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
            times.push_back(ms * 1e-3 / calls);
        }
        std::sort(times.begin(), times.end());
        result = times[times.size() / 2];
        cudaEventDestroy(start);
        cudaEventDestroy(stop);
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
    }
    FOURBIT_CUDA_CHECK(cudaStreamDestroy(stream));
    return result;
}

// Streams a buffer with 16-byte loads; the sum keeps the loads alive.
__global__ void read_kernel(const uint4* data, int64_t n, uint32_t* sink) {
    uint32_t acc = 0;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const uint4 v = cuda::load_streaming(data + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

// Streams two buffers (a matrix's codes and scales) with 16-byte loads, four in flight a thread;
// the sum keeps the loads alive. The ladder's "read only" row: what one launch can read of the
// same bytes, no math.
__global__ void read_two_kernel(const uint4* first, int64_t n_first, const uint4* second,
                                int64_t n_second, uint32_t* sink) {
    constexpr int kInFlight = 4;
    const int64_t n = n_first + n_second, stride = int64_t(gridDim.x) * blockDim.x;
    uint32_t acc = 0;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += kInFlight * stride) {
        uint4 v[kInFlight];
#pragma unroll
        for (int j = 0; j < kInFlight; ++j) {
            const int64_t at = i + j * stride;
            v[j] = at >= n
                       ? make_uint4(0, 0, 0, 0)
                       : cuda::load_streaming(at < n_first ? first + at : second + (at - n_first));
        }
#pragma unroll
        for (int j = 0; j < kInFlight; ++j) acc ^= v[j].x ^ v[j].y ^ v[j].z ^ v[j].w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

// Copies a buffer with 16-byte loads and stores.
__global__ void copy_kernel(const uint4* source, uint4* destination, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        destination[i] = cuda::load_streaming(source + i);
    }
}

int sm_count() {
    static const int sms = cuda::current_device_attribute(cudaDevAttrMultiProcessorCount);
    return sms;
}

// read_two_kernel over `first` and `second` (n_first and n_second 16-byte units) on the current
// stream, with enough CTAs for one pass of four loads a thread, at most 8 an SM.
void read_two(const uint4* first, int64_t n_first, const uint4* second, int64_t n_second,
              uint32_t* sink) {
    const int64_t blocks =
        std::min<int64_t>(int64_t(sm_count()) * 8, (n_first + n_second + 1023) / 1024);
    read_two_kernel<<<blocks, 256, 0, cuda::current_stream()>>>(first, n_first, second, n_second,
                                                                sink);
}

struct Ceilings {
    double copy_bytes_per_s;  // device-to-device copy, bytes read + written
    double read_bytes_per_s;  // 16-byte streaming reads
};

Ceilings measure_ceilings() {
    const int64_t bytes = int64_t(2) << 30;
    Tensor a = Tensor::zeros(DType::u8, {bytes}, kGpu), b = Tensor::zeros(DType::u8, {bytes}, kGpu);
    Tensor sink = Tensor::zeros(DType::u32, {1}, kGpu);
    Ceilings c{};
    // The copy two ways, the better one counting: cudaMemcpy (in a graph it may take the copy
    // engines, which measured far below the SMs here) and a kernel.
    const double memcpy_rate =
        2.0 * bytes / seconds_per_call(4, [&](int) {
            FOURBIT_CUDA_CHECK(cudaMemcpyAsync(b.data<uint8_t>(), a.data<uint8_t>(), bytes,
                                               cudaMemcpyDeviceToDevice, cuda::current_stream()));
        });
    const int sms = sm_count();
    const double kernel_rate = 2.0 * bytes / seconds_per_call(4, [&](int) {
                                   copy_kernel<<<sms * 8, 256, 0, cuda::current_stream()>>>(
                                       a.data<uint4>(), b.data<uint4>(), bytes / 16);
                               });
    std::printf("copy: cudaMemcpyAsync %.0f GB/s, copy kernel %.0f GB/s (read + write)\n",
                memcpy_rate / 1e9, kernel_rate / 1e9);
    c.copy_bytes_per_s = std::max(memcpy_rate, kernel_rate);
    c.read_bytes_per_s = bytes / seconds_per_call(4, [&](int) {
                             read_kernel<<<sms * 8, 256, 0, cuda::current_stream()>>>(
                                 a.data<uint4>(), bytes / 16, sink.data<uint32_t>());
                         });
    return c;
}

// ---- results -----------------------------------------------------------------------------

struct Row {
    std::string kind, shape, variant;
    int tokens;
    double us, bytes, floor_us;
};
std::vector<Row> g_rows;
Ceilings g_ceilings;

void report(const Row& row) {
    g_rows.push_back(row);
    const double gbs = row.bytes / (row.us * 1e-6) / 1e9;
    std::printf("| %s | %s | %s | %d | %.2f | %.1f | %.0f | %.2f |\n", row.kind.c_str(),
                row.shape.c_str(), row.variant.c_str(), row.tokens, row.us, row.bytes / 1e6, gbs,
                row.floor_us / row.us);
    std::fflush(stdout);
}

// ---- NVFP4 GEMV ladder -------------------------------------------------------------------

struct MatrixShape {
    const char* name;
    int64_t n, k;
};
constexpr MatrixShape kShapes[] = {
    {"q/k/v stacked 8192x3072", 8192, 3072}, {"q_proj 6144x3072", 6144, 3072},
    {"k/v_proj 1024x3072", 1024, 3072},      {"o_proj 3072x6144", 3072, 6144},
    {"expert w1/w3 1536x3072", 1536, 3072},  {"expert w2 3072x1536", 3072, 1536}};

cuda::nvfp4::TilesView tiles_of(const LinearWeight& w) {
    return {w.weight.data<uint4>(), w.block_scale.data<uint2>(), static_cast<int>(w.rows()),
            static_cast<int>(w.cols())};
}

float out_scale_of(const LinearWeight& w) { return std::ldexp(w.global_scale, kNvFp4TileExponent); }

template <int kChunk, bool kPdl>
void launch_variant(const LinearWeight& w, const Tensor& x, Tensor& y) {
    FOURBIT_CUDA_CHECK((cuda::nvfp4::launch_linear_block<kChunk, kPdl>(
        tiles_of(w), x.data<float>(), static_cast<int>(x.dim(0)),
        cuda::nvfp4::one_part(y.data<float>(), static_cast<int>(w.rows()), out_scale_of(w)),
        cuda::current_stream())));
    FOURBIT_CUDA_CHECK_LAUNCH();
}

// A variant's output against production's: the same products (bf16, exact), summed in the same
// order or, where the variant splits a stripe over another number of warps (8 or 6 by the
// kernel's occupancy, launch_linear_block; 16 below), in another, so within a few ulps of the
// largest output times the number of partial sums.
bool close_floats(const Tensor& a, const Tensor& b) {
    Tensor ha = a.to(Device::host()), hb = b.to(Device::host());
    double largest = 0;
    for (int64_t i = 0; i < ha.numel(); ++i)
        largest = std::max(largest, std::fabs(double(ha.data<float>()[i])));
    for (int64_t i = 0; i < ha.numel(); ++i) {
        const double d = std::fabs(double(ha.data<float>()[i]) - hb.data<float>()[i]);
        if (!(d <= 1e-5 * largest)) return false;
    }
    return true;
}

// ---- a ladder variant not in production: k split over 16 warps per stripe ------------------
// Prediction from the three runs (bench/results/cuda_kernels.md): time grows with the groups
// each warp walks (w2 with 3 per warp ran 3.4 us, w1 with 6 per warp 4.5 us for the same bytes),
// so halving every warp's chain should help the small grids (k/v, one expert) most and may
// cost q_proj (one CTA of 16 warps per SM instead of three of 8). One token tile (m <= 8).
template <int kChunk>
__global__ void __launch_bounds__(512)
    linear_split16_kernel(cuda::nvfp4::TilesView w, const float* x, int n_tokens, float out_scale,
                          float* y) {
    using namespace cuda::nvfp4;
    constexpr int kSplit = 16;
    extern __shared__ uint2 staged[];
    cuda::allow_dependents();
    const int stripe = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int groups = w.k / kGroupCols;
    const int begin = warp * groups / kSplit, end = (warp + 1) * groups / kSplit;
    const uint4* codes = w.codes + static_cast<int64_t>(stripe) * groups * 32;
    const uint2* scales = w.scales + static_cast<int64_t>(stripe) * groups * 8;
    const LaneTiles at(codes, scales, begin);
    WeightChunk<kChunk> first;
    load_chunk(first, at, end - begin);
    cuda::wait_for_prerequisites();
    stage_rows(
        staged, n_tokens, w.k, [&](int r) { return x + static_cast<int64_t>(r) * w.k; }, 512);
    float acc[1][4] = {};
    stripe_partial<1>(first, at, begin, end, StagedB<1>(staged, fragment_stride(w.k), n_tokens),
                      acc);
    __shared__ float partial[kSplit][4][32];
#pragma unroll
    for (int c = 0; c < 4; ++c) partial[warp][c][lane] = acc[0][c];
    __syncthreads();
    if (threadIdx.x < 128) {
        const int reg = threadIdx.x / 32, l = threadIdx.x % 32;
        float sum = 0.0f;
#pragma unroll
        for (int v = 0; v < kSplit; ++v) sum += partial[v][reg][l];
        const int row = stripe * 16 + (l >> 2) + (reg >= 2 ? 8 : 0);
        const int token = 2 * (l & 3) + (reg & 1);
        if (token < n_tokens) y[static_cast<int64_t>(token) * w.n + row] = sum * out_scale;
    }
}

void launch_split16(const LinearWeight& w, const Tensor& x, Tensor& y) {
    const int m = static_cast<int>(x.dim(0));
    const cuda::nvfp4::TilesView tiles = tiles_of(w);
    const size_t bytes = cuda::nvfp4::staged_bytes(m, tiles.k);
    FOURBIT_CUDA_CHECK(cuda::opt_in_shared_memory(linear_split16_kernel<4>, bytes));
    linear_split16_kernel<4><<<tiles.n / 16, 512, bytes, cuda::current_stream()>>>(
        tiles, x.data<float>(), m, out_scale_of(w), y.data<float>());
    FOURBIT_CUDA_CHECK_LAUNCH();
}

void gemv_ladder() {
    std::printf(
        "\n| kind | shape | variant | tokens | us | MB | GB/s | of copy BW "
        "|\n|---|---|---|---:|---:|---:|---:|---:|\n");
    for (const MatrixShape& shape : kShapes) {
        LinearWeight one = random_tiled_nvfp4(shape.n, shape.k, 1);
        const int copies = static_cast<int>(std::max(4.0, kWorkingSetBytes / weight_bytes(one)));
        std::vector<LinearWeight> weights;
        for (int i = 0; i < copies; ++i)
            weights.push_back(random_tiled_nvfp4(shape.n, shape.k, 100 + i));
        for (int m : {1, 2, 4, 8, 16}) {
            Tensor x = random_f32({m, shape.k}, 7);
            Tensor y = Tensor::zeros(DType::f32, {m, shape.n}, kGpu);
            const double bytes = weight_bytes(one) + 4.0 * m * (shape.k + shape.n);
            const double floor_us = bytes / g_ceilings.copy_bytes_per_s * 1e6;
            report({"nvfp4 linear", shape.name, "production", m,
                    1e6 * seconds_per_call(copies, [&](int i) { linear(x, weights[i], y); }), bytes,
                    floor_us});
            // The ladder: loads in flight per warp (groups of 16 B per lane before the first use).
            Tensor y_variant = Tensor::zeros(DType::f32, {m, shape.n}, kGpu);
            auto variant = [&](const char* name, auto launch) {
                launch(weights[0], x, y_variant);
                linear(x, weights[0], y);
                FOURBIT_CUDA_CHECK(cudaDeviceSynchronize());
                if (!close_floats(y, y_variant)) {
                    std::printf("| VALIDATION FAILED | %s | %s | %d |\n", shape.name, name, m);
                }
                report({"nvfp4 linear", shape.name, name, m,
                        1e6 * seconds_per_call(copies,
                                               [&](int i) { launch(weights[i], x, y_variant); }),
                        bytes, floor_us});
            };
            if (m == 1) {
                // The same call with its weights already in L2 (one copy, re-read): what a
                // latency-bound GEMV would gain from a prefetch.
                report({"nvfp4 linear", shape.name, "weights in L2", m,
                        1e6 * seconds_per_call(copies, [&](int) { linear(x, weights[0], y); }),
                        bytes, floor_us});
                // The same bytes read by a plain streaming kernel, one launch each (no math, no
                // activations): the ceiling a GEMV of this size meets in its launch, first
                // loads and last wave, beside the large copy's.
                Tensor sink = Tensor::zeros(DType::u32, {1}, kGpu);
                report({"nvfp4 linear", shape.name, "read only (no math)", m,
                        1e6 * seconds_per_call(copies,
                                               [&](int i) {
                                                   read_two(
                                                       weights[i].weight.data<uint4>(),
                                                       weights[i].weight.size_bytes() / 16,
                                                       weights[i].block_scale.data<uint4>(),
                                                       weights[i].block_scale.size_bytes() / 16,
                                                       sink.data<uint32_t>());
                                               }),
                        bytes, floor_us});
            }
            if (m == 1 || m == 16) {
                variant("chunk 4, no PDL", launch_variant<4, false>);
                variant("chunk 2", launch_variant<2, true>);
                variant("chunk 6", launch_variant<6, true>);
                variant("chunk 8", launch_variant<8, true>);
            }
            if (m == 1 && cuda::nvfp4::stages_activations(
                              m, cuda::nvfp4::staged_bytes(m, static_cast<int>(shape.k)))) {
                variant("16 warps per stripe", launch_split16);
            }
            // The same op with x as bf16 rows, as the decode's producers hand them to NVFP4
            // linears (ops/linear.h, linear_activation_dtype).
            Tensor x_bf16 = Tensor::zeros(DType::bf16, {m, shape.k}, kGpu);
            cuda::round_to_bf16(x.data<float>(), x_bf16.data<__nv_bfloat16>(), x.numel(),
                                cuda::current_stream());
            variant("production, x bf16", [&](const LinearWeight& w, const Tensor&, Tensor& out) {
                linear(x_bf16, w, out);
            });
        }
    }
    // The BF16 op at the largest shape, for comparison, and at the lm_head's (M2's vocabulary;
    // the step's largest kernel at batch 8): at these token counts it runs the exact GEMV (x in
    // f32, as on the CPU; cuBLAS only for more tokens: ops/linear.h), not cuBLAS.
    struct Bf16Case {
        const char* name;
        int64_t n, k;
        int m;
    };
    for (const Bf16Case& c :
         {Bf16Case{"q_proj 6144x3072", 6144, 3072, 1}, Bf16Case{"q_proj 6144x3072", 6144, 3072, 16},
          Bf16Case{"lm_head 200064x3072", 200064, 3072, 1},
          Bf16Case{"lm_head 200064x3072", 200064, 3072, 8}}) {
        const int64_t n = c.n, k = c.k;
        const int m = c.m;
        LinearWeight one = random_bf16(n, k, 1);
        const int copies = static_cast<int>(std::max(4.0, kWorkingSetBytes / weight_bytes(one)));
        std::vector<LinearWeight> weights;
        for (int i = 0; i < copies; ++i) weights.push_back(random_bf16(n, k, 200 + i));
        Tensor x = random_f32({m, k}, 8);
        Tensor y = Tensor::zeros(DType::f32, {m, n}, kGpu);
        const double bytes = weight_bytes(one) + 4.0 * m * (n + k);
        report({"bf16 linear", c.name, "production", m,
                1e6 * seconds_per_call(copies, [&](int i) { linear(x, weights[i], y); }), bytes,
                bytes / g_ceilings.copy_bytes_per_s * 1e6});
    }
}

// ---- one MoE layer -----------------------------------------------------------------------

void moe_layer() {
    constexpr int64_t kExperts = 256, kTopK = 8, kHidden = 3072, kInter = 1536;
    GroupedExperts experts;
    experts.hidden = kHidden;
    experts.intermediate = kInter;
    experts.count = kExperts;
    experts.gate_up_codes = Tensor::zeros(DType::u8, {kExperts, 2 * kInter, kHidden / 2}, kGpu);
    experts.gate_up_scales = Tensor::zeros(DType::u8, {kExperts, 2 * kInter, kHidden / 16}, kGpu);
    experts.down_codes = Tensor::zeros(DType::u8, {kExperts, kHidden, kInter / 2}, kGpu);
    experts.down_scales = Tensor::zeros(DType::u8, {kExperts, kHidden, kInter / 16}, kGpu);
    fill_tiles<<<4096, 256>>>(experts.gate_up_codes.data<uint8_t>(), experts.gate_up_codes.numel(),
                              experts.gate_up_scales.data<uint8_t>(),
                              experts.gate_up_scales.numel(), 3);
    fill_tiles<<<4096, 256>>>(experts.down_codes.data<uint8_t>(), experts.down_codes.numel(),
                              experts.down_scales.data<uint8_t>(), experts.down_scales.numel(), 4);
    FOURBIT_CUDA_CHECK_LAUNCH();
    Tensor host_scales = Tensor::zeros(DType::f32, {kExperts, 3});
    for (int64_t i = 0; i < host_scales.numel(); ++i)
        host_scales.data<float>()[i] = std::ldexp(0.01f, kNvFp4TileExponent);
    experts.out_scales = host_scales.to(kGpu);
    LinearWeight router = random_bf16(kExperts, kHidden, 5);
    const Tensor norm_weight = random_f32({kHidden}, 6);
    const double expert_bytes = 3.0 * kHidden * kInter * 0.5625;

    for (int64_t tokens : {1, 4, 32}) {
        // Distinct residual streams and attention outputs: distinct routing per call. moe_router
        // adds each r into its x (so x drifts between calls, as the residual stream does) and
        // writes each input's h, in f32 and rounded to bf16 (the experts' input, as the model
        // hands it over), which the experts-only runs read again.
        constexpr int kInputs = 64;
        std::vector<Tensor> xs, rs, hs, hs_bf16;
        for (int i = 0; i < kInputs; ++i) {
            xs.push_back(random_f32({tokens, kHidden}, 1000 + i));
            rs.push_back(random_f32({tokens, kHidden}, 2000 + i));
            hs.push_back(Tensor::zeros(DType::f32, {tokens, kHidden}, kGpu));
            hs_bf16.push_back(Tensor::zeros(DType::bf16, {tokens, kHidden}, kGpu));
        }
        Tensor logits = Tensor::zeros(DType::f32, {tokens, kExperts}, kGpu);
        std::vector<Tensor> ids, weights;  // one routing per input, kept for the experts-only run
        for (int i = 0; i < kInputs; ++i) {
            ids.push_back(Tensor::zeros(DType::i32, {tokens, kTopK}, kGpu));
            weights.push_back(Tensor::zeros(DType::f32, {tokens, kTopK}, kGpu));
        }
        Tensor out = Tensor::zeros(DType::f32, {tokens, kHidden}, kGpu);
        auto step = [&](int i) {
            moe_router(xs[i], rs[i], norm_weight, 1e-6f, router, Tensor(), kTopK, hs[i], logits,
                       ids[i], weights[i], &hs_bf16[i]);
            moe_experts(hs_bf16[i], ids[i], weights[i], experts, out);
        };
        // The byte floor of each call: the router and every distinct expert it routes to, once.
        double floor_bytes = 0, slot_bytes = 0;
        for (int i = 0; i < kInputs; ++i) {
            step(i);
            Tensor host_ids = ids[i].to(Device::host());
            std::vector<int32_t> distinct(host_ids.data<int32_t>(),
                                          host_ids.data<int32_t>() + host_ids.numel());
            std::sort(distinct.begin(), distinct.end());
            distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
            floor_bytes += weight_bytes(router) + distinct.size() * expert_bytes;
            slot_bytes += host_ids.numel() * expert_bytes;
        }
        floor_bytes /= kInputs;
        slot_bytes /= kInputs;
        const double us = 1e6 * seconds_per_call(kInputs, step);
        report({"moe layer decode", "256 experts top 8, 3072/1536", "norm+router+route+experts",
                static_cast<int>(tokens), us, floor_bytes,
                floor_bytes / g_ceilings.copy_bytes_per_s * 1e6});
        // The experts alone over the same routings. Their floor counts each distinct expert
        // once; the kernels read an expert once per routed slot (no sharing across tokens yet),
        // so at 4 tokens they read slot_bytes.
        const double experts_floor = floor_bytes - weight_bytes(router);
        for (const bool bf16 : {true, false}) {
            const std::vector<Tensor>& inputs = bf16 ? hs_bf16 : hs;
            const double experts_us = 1e6 * seconds_per_call(kInputs, [&](int i) {
                                          moe_experts(inputs[i], ids[i], weights[i], experts, out);
                                      });
            report({"moe experts only", "256 experts top 8, 3072/1536",
                    bf16 ? "gate_up+down, h bf16 (production)" : "gate_up+down, h f32",
                    static_cast<int>(tokens), experts_us, experts_floor,
                    experts_floor / g_ceilings.copy_bytes_per_s * 1e6});
        }
        std::printf("(moe, %d tokens: %.1f MB routed per call, %.1f MB distinct)\n",
                    static_cast<int>(tokens), slot_bytes / 1e6, experts_floor / 1e6);
    }
    // The one-token experts' two kernels against a bare read of the same bytes in one launch each
    // (the GEMV ladder's "read only" rows): 8 experts' gate/up, then their down, a different 8
    // each call (several times the L2).
    const auto read_experts = [&](const char* name, const Tensor& codes, const Tensor& scales) {
        const int64_t codes_per_expert = codes.numel() / kExperts / 16;
        const int64_t scales_per_expert = scales.numel() / kExperts / 16;
        const double bytes = 16.0 * kTopK * (codes_per_expert + scales_per_expert);
        Tensor sink = Tensor::zeros(DType::u32, {1}, kGpu);
        const double us =
            1e6 * seconds_per_call(kExperts / kTopK, [&](int i) {
                const int64_t first = int64_t(i) * kTopK;
                read_two(codes.data<uint4>() + first * codes_per_expert, kTopK * codes_per_expert,
                         scales.data<uint4>() + first * scales_per_expert,
                         kTopK * scales_per_expert, sink.data<uint32_t>());
            });
        report({"moe experts only", "256 experts top 8, 3072/1536", name, 1, us, bytes,
                bytes / g_ceilings.copy_bytes_per_s * 1e6});
    };
    read_experts("gate_up bytes of 8 experts, read only (no math)", experts.gate_up_codes,
                 experts.gate_up_scales);
    read_experts("down bytes of 8 experts, read only (no math)", experts.down_codes,
                 experts.down_scales);
}

// ---- one layer's paged attention ----------------------------------------------------------

// Sequences of n_new tokens each, the last at position n_context - 1, in blocks of 16 that the
// sequences take in turn from one pool (as a shared pool hands them out).
struct AttentionCase {
    const char* name;
    int64_t n_sequences, n_new, n_context;
};

// `only`: the rows whose "step | cache" contain it (every row if empty).
void attention_layer(const std::string& only = "") {
    const AttentionShape shape{48, 8, 128};
    constexpr int64_t kBlock = 16;
    const int64_t q_width = shape.n_heads * shape.head_dim,
                  kv_width = shape.n_kv_heads * shape.head_dim;
    std::printf(
        "\n| attention | step | cache | tokens | us | TFLOP/s | GB/s (keys and values once) |\n"
        "|---|---|---|---:|---:|---:|---:|\n");
    // prefill 4096 first: a profiler's first attention launch (check.sh's ncu, --attention).
    for (const AttentionCase& c :
         {AttentionCase{"prefill 4096", 1, 4096, 4096}, AttentionCase{"prefill 512", 1, 512, 512},
          AttentionCase{"chunk of 512 after 16K", 1, 512, 16896},
          AttentionCase{"decode at 4K", 1, 1, 4096}, AttentionCase{"decode at 32K", 1, 1, 32768},
          AttentionCase{"decode at 128K", 1, 1, 131072},
          AttentionCase{"16 decodes at 8K", 16, 1, 8192}}) {
        for (DType dtype : {DType::f32, DType::bf16}) {  // the KV cache's elements
            const char* cache = dtype == DType::bf16 ? "bf16 cache" : "f32 cache";
            if ((std::string(c.name) + " | " + cache).find(only) == std::string::npos) continue;
            const int64_t blocks = (c.n_context + kBlock - 1) / kBlock;
            KvLayer pool{Tensor::zeros(dtype, {c.n_sequences * blocks * kBlock, kv_width}, kGpu),
                         Tensor::zeros(dtype, {c.n_sequences * blocks * kBlock, kv_width}, kGpu),
                         kBlock};
            fill_uniform(pool.keys, -1.0f, 1.0f, 21);
            fill_uniform(pool.values, -1.0f, 1.0f, 22);
            std::vector<std::vector<int32_t>> tables(c.n_sequences);
            std::vector<PagedSequence> sequences;
            for (int64_t s = 0; s < c.n_sequences; ++s) {
                for (int64_t b = 0; b < blocks; ++b) {
                    tables[s].push_back(static_cast<int32_t>(b * c.n_sequences + s));
                }
                sequences.push_back({tables[s], c.n_context - c.n_new, c.n_new});
            }
            const PagedTokens tokens = paged_tokens_to(paged_tokens(sequences), kGpu);
            const int64_t n_tokens = c.n_sequences * c.n_new;
            Tensor q = random_f32({n_tokens, q_width}, 23);
            Tensor out = Tensor::zeros(DType::f32, {n_tokens, q_width}, kGpu);
            // q k and p v: 2 x 2 flops per (token, head, visible position, dimension)
            double flops = 0;
            for (int64_t p = c.n_context - c.n_new; p < c.n_context; ++p) {
                flops += 4.0 * (p + 1) * shape.n_heads * shape.head_dim * c.n_sequences;
            }
            const double bytes =
                2.0 * dtype_size_bytes(dtype) * c.n_sequences * c.n_context * kv_width +
                2.0 * 4 * n_tokens * q_width;
            const double us = 1e6 * seconds_per_call(c.n_new > 1 ? 2 : 20, [&](int) {
                                  attention_paged(q, tokens, pool, shape, out);
                              });
            std::printf("| attention | %s | %s | %lld | %.1f | %.2f | %.0f |\n", c.name, cache,
                        static_cast<long long>(n_tokens), us, flops / (us * 1e-6) / 1e12,
                        bytes / (us * 1e-6) / 1e9);
            std::fflush(stdout);
            g_rows.push_back({"attention 48/8x128", c.name, cache, static_cast<int>(n_tokens), us,
                              bytes, bytes / g_ceilings.copy_bytes_per_s * 1e6});
        }
    }
}

// For a profiler (check.sh runs ncu on this): three eager calls of the production q_proj GEMV at
// one token, nothing timed.
void profile_targets() {
    LinearWeight q_proj = random_tiled_nvfp4(6144, 3072, 1);
    Tensor x = random_f32({1, 3072}, 7);
    Tensor y = Tensor::zeros(DType::f32, {1, 6144}, kGpu);
    for (int i = 0; i < 3; ++i) linear(x, q_proj, y);
    FOURBIT_CUDA_CHECK(cudaDeviceSynchronize());
}

void write_json(const char* path, const std::string& card) {
    FILE* f = std::fopen(path, "w");
    if (f == nullptr) return;
    const char* commit = std::getenv("FOURBIT_COMMIT");
    const char* date = std::getenv("FOURBIT_DATE");
    std::fprintf(f, "{\n  \"card\": \"%s\",\n  \"date\": \"%s\",\n  \"commit\": \"%s\",\n",
                 card.c_str(), date ? date : "", commit ? commit : "");
    std::fprintf(f, "  \"copy_GBps\": %.1f,\n  \"read_GBps\": %.1f,\n  \"rows\": [\n",
                 g_ceilings.copy_bytes_per_s / 1e9, g_ceilings.read_bytes_per_s / 1e9);
    for (size_t i = 0; i < g_rows.size(); ++i) {
        const Row& r = g_rows[i];
        std::fprintf(
            f,
            "    {\"kind\": \"%s\", \"shape\": \"%s\", \"variant\": \"%s\", \"tokens\": %d, "
            "\"us\": %.3f, \"bytes\": %.0f, \"GBps\": %.1f, \"of_copy_bw\": %.3f}%s\n",
            r.kind.c_str(), r.shape.c_str(), r.variant.c_str(), r.tokens, r.us, r.bytes,
            r.bytes / (r.us * 1e-6) / 1e9, r.floor_us / r.us, i + 1 < g_rows.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
}

}  // namespace
}  // namespace fourbit

int main(int argc, char** argv) {
    using namespace fourbit;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        std::printf("no CUDA device: nothing to measure\n");
        return 0;
    }
    if (argc > 1 && std::string(argv[1]) == "--profile") {
        profile_targets();
        return 0;
    }
    if (argc > 1 && std::string(argv[1]) == "--attention") {
        attention_layer(argc > 2 ? argv[2] : "");
        return 0;
    }
    cudaDeviceProp props;
    FOURBIT_CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
    const std::string card = props.name;
    g_ceilings = measure_ceilings();
    std::printf("card: %s, %d SMs, L2 %d MB\n", card.c_str(), props.multiProcessorCount,
                props.l2CacheSize >> 20);
    std::printf("copy bandwidth (device to device, read + write): %.0f GB/s\n",
                g_ceilings.copy_bytes_per_s / 1e9);
    std::printf("read bandwidth (16-byte streaming loads): %.0f GB/s\n",
                g_ceilings.read_bytes_per_s / 1e9);
    if (!(argc > 1 && std::string(argv[1]) == "--moe")) gemv_ladder();
    moe_layer();
    if (argc > 1 && std::string(argv[1]) == "--moe") return 0;
    attention_layer();
    if (argc > 1) write_json(argv[1], card);
    return 0;
}
