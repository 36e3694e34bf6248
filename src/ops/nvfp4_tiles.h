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
//          sign and the 3-bit magnitude at kNvFp4PairSign[j] and from kNvFp4PairMagnitude[j] up,
//          placed so that the fewest shifts and masks drop each pair straight into bf16x2
//          (value x 2^-126, see nvfp4_tile_word_to_bf16x2). A warp's 32 x 16-byte loads are one
//          512-byte run.
//   scales  64 bytes: entry g (8 bytes) = for k-tile i, bytes 2i and 2i + 1: row g's scale and
//          row g+8's, so that one byte permute gives a k-tile's two rows as one bf16x2.
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

// Where pair j's sign bit and the lowest of its three magnitude bits sit in each half-word of a
// code word. The bf16 wants them at bit 15 and bits 6..8 (its two low exponent bits and its top
// mantissa bit); these places let two pairs move with one shift (pair 0 with none) and the
// other two with two, the fewest any placement of four such fields in 16 bits allows.
inline constexpr int kNvFp4PairSign[4] = {15, 9, 10, 11};
inline constexpr int kNvFp4PairMagnitude[4] = {6, 0, 3, 12};

// One 32-bit code word -> the four bf16x2 A-fragment registers of a k-tile, each the bf16 of
// e2m1 x 2^-126: the sign to bit 15 and the magnitude to bits 6..8 is no arithmetic, code 1
// (0.5) landing on the bf16 subnormal 2^-127. The idea is vLLM Marlin's FP4 dequant; the bit
// placement is ours: 5 shifts and 6 masks per 8 codes.
FOURBIT_TILES_DECODE void nvfp4_tile_word_to_bf16x2(uint32_t q, uint32_t (&a)[4]) {
    constexpr uint32_t kSign = 0x80008000u, kMagnitude = 0x01C001C0u, kBoth = kSign | kMagnitude;
    a[0] = q & kBoth;
    a[1] = (q << 6) & kBoth;
    a[2] = ((q << 5) & kSign) | ((q << 3) & kMagnitude);
    a[3] = ((q << 4) & kSign) | ((q >> 6) & kMagnitude);
}

// Scale word w of a lane's entry (k-tiles 2w and 2w + 1) and j = 0 or 1 -> bf16x2 {row g's
// scale, row g+8's} x 2^107 of k-tile 2w + j: bytes 2j and 2j + 1 into the half-words'
// exponent/mantissa fields and the exponent's top bits set. With the codes' 2^-126 every
// product is e2m1 x scale x 2^-19: a normal bf16 (2^-29 .. 2^-7.6) and exact (2 x 4
// significant bits).
FOURBIT_TILES_DECODE uint32_t nvfp4_tile_scale_bf16x2(uint32_t scales, int j) {
#if defined(__CUDA_ARCH__)
    // Two instructions: PRMT puts the two bytes in the half-words' low bytes (the device op
    // tests check it against the host's form below).
    return __byte_perm(scales, 0u, 0x4140u + 0x0202u * j) * 16u + 0x70007000u;
#else
    const uint32_t pair = scales >> (16 * j);
    return ((pair & 0xffu) | ((pair & 0xff00u) << 8)) * 16u + 0x70007000u;
#endif
}

// e2m1(code) x e4m3 scale of element [r, c] as the tiles hold it (the global scale left out):
// the inverse of nvfp4_to_tiles, for tests.
float nvfp4_tiles_value(const uint8_t* codes, const uint8_t* scales, int64_t k, int64_t r,
                        int64_t c);

}  // namespace fourbit
