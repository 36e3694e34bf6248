// The NVFP4 weight layout of the CUDA kernels ("tiles"), made once at load from the checkpoint's
// row-major codes and e4m3 scales, and its inverse for tests. Host code: no CUDA needed.
//
// The kernels multiply on bf16 tensor cores (mma.sync m16n8k16, weights as the A operand), so
// the layout is the A fragment: rows in stripes of 16, columns in groups of 64 (4 k-tiles of
// 16). Per (stripe s, group kg), stored stripe-major:
//
//   codes  512 bytes: lane l = 4g + t (g = l / 4, t = l % 4) owns 16 bytes, one 32-bit word per
//          k-tile i; the word holds the 8 codes of that lane's fragment, register j = pair j:
//            j=0 (row g,   cols 2t, 2t+1)      j=1 (row g+8, cols 2t, 2t+1)
//            j=2 (row g,   cols 2t+8, 2t+9)    j=3 (row g+8, cols 2t+8, 2t+9)
//          pair j's first code in the low half-word, second in the high one; in each half the
//          magnitude (3 bits) at bits [3j, 3j+2] and the sign at bit 15 - j, so that one or two
//          shifts and a mask drop a pair straight into bf16x2 (value x 2^-126, see
//          ops/cuda/nvfp4_mma.cuh). A warp's 32 x 16-byte loads are one 512-byte run.
//   scales  64 bytes: entry g (8 bytes) = row g's scales of k-tiles 0..3, then row g+8's.
//          Each is re-encoded E5M3 (5-bit exponent e + 10, 3-bit mantissa, no sign): exact for
//          every finite e4m3 value, and (byte << 4) | 0x7000 is the bf16 of scale x 2^107.
//          A zero scale zeroes its block's codes; a negative one flips their signs.
//
// So a row stripe of 16 and 64 columns takes exactly the bytes it took before (0.5625 bytes per
// weight): the checkpoint's [n, k / 2] codes and [n, k / 16] scales keep their shapes.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace fourbit {

inline constexpr int64_t kNvFp4TileRows = 16;
inline constexpr int64_t kNvFp4TileCols = 64;
// The power of two the tiles' scales and codes leave out: a product of a dequantized code and
// its scale is (e2m1 x scale) x 2^-kNvFp4TileExponent, so outputs are multiplied by
// 2^kNvFp4TileExponent x the global scale.
inline constexpr int kNvFp4TileExponent = 19;

// One source row: its k / 2 packed codes (even column in the low nibble) and k / 16 e4m3 scales.
struct NvFp4SourceRow {
    const uint8_t* codes;
    const uint8_t* scales;
};

// Repacks n rows of k columns (n % 16 == 0, k % 64 == 0, checked) into tiles; row r of the tiled
// matrix is source_row(r). `codes` receives n * k / 2 bytes, `scales` n * k / 16. A NaN scale is
// an error naming `what`.
void nvfp4_to_tiles(int64_t n, int64_t k, const std::function<NvFp4SourceRow(int64_t)>& source_row,
                    uint8_t* codes, uint8_t* scales, const char* what);

// How the kernels decode the tiles, plain integer code so that host tests check the very same
// functions the device runs (ops/cuda/nvfp4_mma.cuh uses them).
#if defined(__CUDACC__)
#define FOURBIT_TILES_DECODE __host__ __device__ __forceinline__
#else
#define FOURBIT_TILES_DECODE inline
#endif

// One 32-bit code word -> the four bf16x2 A-fragment registers of a k-tile, each the bf16 of
// e2m1 x 2^-126. Pair j keeps its sign at bit 15 - j and its 3-bit magnitude at [3j, 3j+2] (in
// both half-words): moving the sign to bit 15 and the magnitude to bits 6..8 (bf16's two low
// exponent bits and its top mantissa bit) needs no arithmetic, code 1 (0.5) landing on the
// bf16 subnormal 2^-127. The idea is vLLM Marlin's FP4 dequant; the bit placement is ours, so
// the four pairs share their shifts: 5 shifts and 4 mask-ors per 8 codes.
FOURBIT_TILES_DECODE void nvfp4_tile_word_to_bf16x2(uint32_t q, uint32_t (&a)[4]) {
    constexpr uint32_t kSign = 0x80008000u, kMagnitude = 0x01C001C0u;
    const uint32_t q3 = q << 3;
    a[0] = (q & kSign) | ((q << 6) & kMagnitude);
    a[1] = ((q << 1) & kSign) | (q3 & kMagnitude);
    a[2] = ((q << 2) & kSign) | (q & kMagnitude);
    a[3] = (q3 & kSign) | ((q >> 3) & kMagnitude);
}

// Byte i of a word of four E5M3 scales -> bf16x2 {scale, scale} x 2^107: the byte into both
// half-words' exponent/mantissa fields and the exponent's top bits set, one multiply-add. With
// the codes' 2^-126 every product is e2m1 x scale x 2^-19: a normal bf16 (2^-29 .. 2^-7.6) and
// exact (2 x 4 significant bits).
FOURBIT_TILES_DECODE uint32_t nvfp4_tile_scale_bf16x2(uint32_t scales, int i) {
#if defined(__CUDA_ARCH__)
    // The same value in two instructions instead of three: PRMT puts byte i in both half-words'
    // low bytes (the device op tests check it against the host's form below).
    return __byte_perm(scales, 0u, 0x4040u | (0x0101u * i)) * 16u + 0x70007000u;
#else
    return ((scales >> (8 * i)) & 0xffu) * 0x00100010u + 0x70007000u;
#endif
}

// e2m1(code) x e4m3 scale of element [r, c] as the tiles hold it (the global scale left out):
// the inverse of nvfp4_to_tiles, for tests.
float nvfp4_tiles_value(const uint8_t* codes, const uint8_t* scales, int64_t k, int64_t r,
                        int64_t c);

}  // namespace fourbit
