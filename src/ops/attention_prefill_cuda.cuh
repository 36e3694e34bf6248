// Paged attention on CUDA for steps of many tokens (prefill chunks): the tiled kernel
// (attention_prefill_cuda.cu) that attention_cuda.cu launches beside its per-token kernel, and
// what the two share.
//
// The per-token kernel loads a token's keys and values once per (token, kv head): a 4096-token
// prompt reads ~67 GB per layer that way. Here one CTA takes 16 consecutive tokens of one
// sequence and a kv head, loads each tile of 32 keys and values once into shared memory for all
// 16 tokens x 6 query heads, and runs both products (scores = q k^T, out += p v) on the tensor
// cores with an online softmax per row (FlashAttention-2's order of work).
//
// Precision: the op's contract is f32 arithmetic on the stored keys and values (tests: 5e-5 of
// a double reference), and a bf16 operand alone carries 2^-9 of relative error. So every f32
// operand is split into two bf16 numbers, x = hi + lo + O(2^-18 |x|), and each product is
// hi hi + hi lo + lo hi (the lo lo term is below 2^-18): three bf16 mma.sync per tile product,
// f32 accumulation. A bf16 pool's keys and values are exact bf16 numbers: only q and the softmax
// weights are split, two mma per product. Measured against the f32 CUDA-core FMA kernel this
// replaces: bench/results/cuda_model.md.
//
// CTA layout: 6 warps, warp h = query head h of the group; its rows are the tile's 16 tokens
// (one m16 tile), so the causal mask is one comparison per score and a row's running maximum
// lives in the 4 lanes that hold the row. 16 tokens rather than 32 (two m16 tiles a warp, each
// key and value fragment serving both): half the shared memory, so a bf16 pool's CTAs run two
// to an SM, which more than pays for reading each tile for half as many tokens (H200, one
// layer's prefill of 4,096 tokens 1.79 -> 1.49 ms; bench/results/cuda_model.md).
// An f32 pool's tiles arrive by cp.async into a staging buffer (the next tile's while this one
// is multiplied), and are split once per CTA into bf16 hi/lo tiles in the layouts the fragments
// read: keys row-major, values transposed (pairs of positions per 32-bit word). A bf16 pool's
// tiles arrive by cp.async straight into two buffers of rows as stored, the fragments read the
// values transposed (ldmatrix.trans). The warp's scores never leave its registers: an m16n8
// accumulator pair is exactly the A fragment of the p v product.
//
// Which tokens: a run is consecutive batch tokens of one sequence (one table offset) at
// consecutive positions. Tokens of runs of at least kMinRun tokens are the tiled kernel's, the
// rest (decodes, short speculative chunks) the per-token kernel's, which skips the others. Both
// decide on the device with in_long_run: the launch must not read the batch back (graphs).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/norm_rope.cuh"
#include "ops/cuda/nvfp4_mma.cuh"

namespace fourbit::cuda::paged_attention {

struct AttentionParams {
    const float* q;
    const void* keys;  // the pool's rows: f32 or bf16 (the launch says which)
    const void* values;
    const int32_t* positions;
    const int32_t* table_offsets;
    const int32_t* tables;
    void* out;  // f32, or bf16 where out_bf16 (store_output)
    int64_t block_size;
    int group;  // query heads per kv head
    int head_dim;
    int q_width;
    int kv_width;
    float scale;
    // Split context (flash-decoding): CTA z covers positions [z split, (z + 1) split) and, with
    // more than one split, leaves its unnormalised output and softmax state in `partial`
    // ([T][n_heads][splits] of d outputs, max, sum) for combine_kernel.
    int split;
    int n_splits;
    float* partial;
    int n_tokens;
    // Set when the tiled kernel runs too: the per-token kernel leaves it the long runs' tokens.
    bool skip_long_runs;
    // The output in bf16, rounded to nearest even: the input of an NVFP4 o_proj, which would
    // round it so itself (ops/linear.h, linear_activation_dtype).
    bool out_bf16;
};

// Output element `index` (token t, head h, dimension i at (t n_heads + h) head_dim + i).
__device__ __forceinline__ void store_output(const AttentionParams& p, int64_t index, float value) {
    if (p.out_bf16) {
        static_cast<__nv_bfloat16*>(p.out)[index] = __float2bfloat16_rn(value);
    } else {
        static_cast<float*>(p.out)[index] = value;
    }
}

// The pool row that holds `position` of the sequence whose block table is `table`. 32-bit
// division (positions and block sizes are ints): a 64-bit one costs several times more in the
// kernels' per-tile address math.
__device__ __forceinline__ int64_t pool_row(const int32_t* table, int block_size, int position) {
    return static_cast<int64_t>(table[position / block_size]) * block_size + position % block_size;
}

// Where query head g of kv head `kv_head` of batch token `token` sits among all tokens' heads
// (a row of out, a run of partial states).
__device__ __forceinline__ int64_t query_head(const AttentionParams& p, int token, int kv_head,
                                              int g) {
    return static_cast<int64_t>(token) * (p.q_width / p.head_dim) + kv_head * p.group + g;
}

// A split that starts past the token's own position has nothing to attend: its partial states
// say so to combine_kernel (no output, maximum -inf), written by the CTA's kThreads threads.
template <int kThreads>
__device__ __forceinline__ void write_empty_split(const AttentionParams& p, int token,
                                                  int kv_head) {
    const int d = p.head_dim;
    for (int index = threadIdx.x; index < p.group * (d + 2); index += kThreads) {
        const int g = index / (d + 2), i = index % (d + 2);
        const int64_t head = query_head(p, token, kv_head, g);
        p.partial[(head * p.n_splits + blockIdx.z) * (d + 2) + i] = i == d ? -INFINITY : 0.0f;
    }
}

// A pool element from f32 (rounded to nearest even for bf16), and back.
__device__ __forceinline__ void store_kv(float* to, float value) { *to = value; }
__device__ __forceinline__ void store_kv(__nv_bfloat16* to, float value) {
    *to = __float2bfloat16_rn(value);
}
__device__ __forceinline__ float load_kv(float value) { return value; }
__device__ __forceinline__ float load_kv(__nv_bfloat16 value) { return __bfloat162float(value); }

// The tensor-core kernels' shared arithmetic (the prefill kernel, and the decode kernel of
// attention_decode_cuda.cu).

// (a, b) = hi + lo as two bf16 pairs, |a - hi.x - lo.x| <= 2^-18 |a| (likewise b).
__device__ __forceinline__ void split_pair(float a, float b, uint32_t& hi, uint32_t& lo) {
    const __nv_bfloat162 high = __floats2bfloat162_rn(a, b);
    const float2 back = __bfloat1622float2(high);
    const __nv_bfloat162 low = __floats2bfloat162_rn(a - back.x, b - back.y);
    hi = *reinterpret_cast<const uint32_t*>(&high);
    lo = *reinterpret_cast<const uint32_t*>(&low);
}

// d += a b with a split and b exact (a bf16 pool's keys and values): two products.
__device__ __forceinline__ void mma_split_a(float (&d)[4], const uint32_t (&a_hi)[4],
                                            const uint32_t (&a_lo)[4], const uint32_t (&b)[2]) {
    nvfp4::mma_bf16_16x8x16(d, a_lo, b);
    nvfp4::mma_bf16_16x8x16(d, a_hi, b);
}

// ldmatrix.trans: like nvfp4::load_matrices, each 8x8 matrix transposed (lane 4g + t receives
// elements (2t, g) and (2t + 1, g)): the B fragment of a matrix stored k-major.
__device__ __forceinline__ void load_matrices_transposed(uint32_t (&words)[4], const void* row) {
    const unsigned address = shared_address(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(words[0]), "=r"(words[1]), "=r"(words[2]), "=r"(words[3])
                 : "r"(address));
}

constexpr int kPrefillHeads = 6;       // query heads per kv head it holds (MiniMax-M2's group)
constexpr int kPrefillDim = 128;       // head_dim it holds; smaller ones are zero-padded
constexpr int kPrefillPositions = 32;  // keys and values per shared tile
constexpr int kPrefillTokens = 16;     // batch tokens per CTA: one m16 tile a warp
constexpr int kPrefillThreads = kPrefillHeads * 32;
// Steps of more tokens than this take the tiled kernel (smaller ones are decodes and
// verification, recorded as graphs, on the per-token kernel as before).
constexpr int kPrefillMinTokens = 64;
// The shortest run the tiled kernel takes. Its CTA costs the same per key whatever part of its
// 16 tokens a run fills, and it walks its runs one after another: a whole tile at least, so
// that a CTA walks at most two runs (the ends of one and the start of the next) and a step of
// short speculative chunks stays on the per-token kernel, which spreads them.
constexpr int kMinRun = 16;

// Whether batch token i (> 0) continues token i - 1's run.
__device__ __forceinline__ bool continues_run(const int32_t* positions, const int32_t* offsets,
                                              int i) {
    return offsets[i] == offsets[i - 1] && positions[i] == positions[i - 1] + 1;
}

// Whether batch token i belongs to a run of at least kMinRun tokens: the same answer for every
// token of a run, looking at most kMinRun - 1 tokens either side.
__device__ __forceinline__ bool in_long_run(const int32_t* positions, const int32_t* offsets,
                                            int n_tokens, int i) {
    int length = 1;
    for (int j = i; j > 0 && length < kMinRun && continues_run(positions, offsets, j); --j)
        ++length;
    for (int j = i + 1; j < n_tokens && length < kMinRun && continues_run(positions, offsets, j);
         ++j) {
        ++length;
    }
    return length >= kMinRun;
}

// in_long_run(i) for a whole warp (every lane calls it, with the same i): lane l loads whether
// token i - (kMinRun - 1) + l continues its predecessor, all at once; the per-token kernel's CTAs
// of a prefill step are one such check each, and a chain of dependent loads made them cost
// ~135 us a layer for 2,048 tokens (H100).
__device__ __forceinline__ bool in_long_run_warp(const int32_t* positions, const int32_t* offsets,
                                                 int n_tokens, int i) {
    static_assert(2 * kMinRun - 1 <= 32, "one lane per neighbour");
    const int lane = threadIdx.x & 31, j = i - (kMinRun - 1) + lane;
    const bool continues =
        lane < 2 * kMinRun - 1 && j > 0 && j < n_tokens && continues_run(positions, offsets, j);
    const unsigned bits = __ballot_sync(~0u, continues);  // bit kMinRun - 1: token i itself
    const unsigned before = (bits & ((1u << kMinRun) - 1)) << (32 - kMinRun);
    const int left = __clz(~before);                  // tokens i, i - 1, ... that continue the run
    const int right = __ffs(~(bits >> kMinRun)) - 1;  // tokens i + 1, i + 2, ... that do
    return 1 + left + right >= kMinRun;
}

// Launches the tiled kernel over p.n_tokens batch tokens of an f32 or a bf16 pool: on sm_90a over
// a bf16 pool the wgmma kernel (attention_prefill_wgmma_cuda.cu), else the mma.sync one
// (attention_prefill_cuda.cu).
cudaError_t launch_prefill_attention(const AttentionParams& p, int n_kv_heads, bool bf16_pool,
                                     cudaStream_t stream);
// Batch tokens per CTA of the kernel launch_prefill_attention picks on the current device.
constexpr int kWgmmaPrefillTokens = 32;
int prefill_tile_tokens(bool bf16_pool);

// Whether the tiled kernel launch_prefill_attention picks fits a CTA's shared memory here
// (shared_memory_per_cta): an f32 pool's tiles (~124 KB) do not on cards of 99 KB a CTA
// (sm_120, the GB10), where the per-token kernel takes every token instead.
bool prefill_fits(bool bf16_pool);

// The wgmma kernel: whether it runs here, its shared memory, and its launch.
bool prefill_runs_wgmma(bool bf16_pool);
size_t prefill_wgmma_shared_bytes();
cudaError_t launch_prefill_attention_wgmma(const AttentionParams& p, int n_kv_heads,
                                           cudaStream_t stream);

// The per-token kernel's work on the tensor cores for a bf16 pool with head_dim a multiple of 8
// (attention_decode_cuda.cu): grid (tokens, kv heads, splits), each split a multiple of
// kDecodeStep positions.
constexpr int kDecodeStep = 64;
// The attention prologue the decode kernel may fold in (attention_with_prologue, a step of one
// token per sequence): p.q and `k` are the projections as the linears left them, and each CTA
// norms and rotates what it needs; the CTA whose split holds the token's position writes its kv
// head's key and value into the bf16 pool (the rows p.keys and p.values read).
struct DecodePrologue {
    const float* k;        // [T, kv_width]
    const float* v;        // [T, kv_width]
    __nv_bfloat16* keys;   // the pool's rows, written
    __nv_bfloat16* values;
    const void* q_weight;  // [q_width] QK-norm weights, f32 or bf16 (bf16_weights)
    const void* k_weight;  // [kv_width]
    bool bf16_weights;
    float eps;
    int half;  // rotary_dim / 2, at most head_dim / 2
    RopeFrequencies frequencies;
};
// prologue: nullptr, or the prologue to fold in.
cudaError_t launch_decode_attention(const AttentionParams& p, const DecodePrologue* prologue,
                                    dim3 grid, cudaStream_t stream);

}  // namespace fourbit::cuda::paged_attention
