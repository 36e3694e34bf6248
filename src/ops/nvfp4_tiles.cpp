#include "ops/nvfp4_tiles.h"

#include <algorithm>
#include <cmath>

#include "nvfp4/e2m1.h"
#include "tensor/numeric.h"
#include "util/error.h"

namespace fourbit {

namespace {

// Where element (row-in-stripe rr, column-in-k-tile cc) sits in a lane's word: the lane, the
// pair j and whether it is the pair's second (high) code.
struct FragmentSlot {
    int lane;
    int pair;
    bool high;
};

FragmentSlot fragment_slot(int rr, int cc) {
    const int g = rr % 8, t = (cc % 8) / 2;
    const int pair = (rr >= 8 ? 1 : 0) + (cc >= 8 ? 2 : 0);
    return {4 * g + t, pair, (cc % 2) == 1};
}

// The scale byte re-encoded E5M3 (see the header); flags a zero or negative scale.
uint8_t tile_scale_code(uint8_t e4m3, bool& zero, bool& negative, const char* what) {
    const float value = f8_e4m3_to_f32(e4m3);
    if (std::isnan(value)) fail("{}: NaN block scale (e4m3 byte {:#04x})", what, e4m3);
    zero = value == 0.0f;
    negative = value < 0.0f;
    if (zero) return 0;
    int exponent = 0;
    const float fraction = std::frexp(std::fabs(value), &exponent);  // [0.5, 1) x 2^exponent
    const int e = exponent - 1;                                       // value = 2^e x (1 + m/8)
    const float mantissa = (fraction * 2.0f - 1.0f) * 8.0f;
    FOURBIT_ASSERT(e >= -9 && e <= 8 && mantissa == std::floor(mantissa),
                   "e4m3 {:#04x} has no E5M3 code", e4m3);
    return static_cast<uint8_t>(((e + 10) << 3) | static_cast<int>(mantissa));
}

}  // namespace

void nvfp4_to_tiles(int64_t n, int64_t k, const std::function<NvFp4SourceRow(int64_t)>& source_row,
                    uint8_t* codes, uint8_t* scales, const char* what) {
    if (n % kNvFp4TileRows != 0 || k % kNvFp4TileCols != 0) {
        fail("{}: NVFP4 [{}, {}] on CUDA needs rows in multiples of {} and columns in multiples "
             "of {}",
             what, n, k, kNvFp4TileRows, kNvFp4TileCols);
    }
    const int64_t groups = k / kNvFp4TileCols;
    std::fill(codes, codes + n * k / 2, uint8_t{0});  // words are assembled by OR
    for (int64_t s = 0; s < n / kNvFp4TileRows; ++s) {
        for (int rr = 0; rr < kNvFp4TileRows; ++rr) {
            const NvFp4SourceRow row = source_row(s * kNvFp4TileRows + rr);
            for (int64_t kg = 0; kg < groups; ++kg) {
                uint8_t* tile_codes = codes + (s * groups + kg) * 512;
                uint8_t* tile_scales = scales + (s * groups + kg) * 64;
                for (int i = 0; i < 4; ++i) {
                    const int64_t block = kg * 4 + i;  // the 16-column scale block
                    bool zero = false, negative = false;
                    tile_scales[(rr % 8) * 8 + (rr >= 8 ? 4 : 0) + i] =
                        tile_scale_code(row.scales[block], zero, negative, what);
                    for (int cc = 0; cc < 16; ++cc) {
                        const int64_t col = block * 16 + cc;
                        uint8_t code = (row.codes[col / 2] >> (4 * (col % 2))) & 0xf;
                        if (zero) code = 0;
                        if (negative) code ^= 0x8;
                        const FragmentSlot slot = fragment_slot(rr, cc);
                        uint32_t word_bits = 0;
                        word_bits |= static_cast<uint32_t>(code & 0x7) << (3 * slot.pair);
                        word_bits |= static_cast<uint32_t>(code >> 3) << (15 - slot.pair);
                        if (slot.high) word_bits <<= 16;
                        uint8_t* word = tile_codes + slot.lane * 16 + i * 4;
                        for (int b = 0; b < 4; ++b) word[b] |= static_cast<uint8_t>(word_bits >> (8 * b));
                    }
                }
            }
        }
    }
}

float nvfp4_tiles_value(const uint8_t* codes, const uint8_t* scales, int64_t k, int64_t r,
                        int64_t c) {
    const int64_t groups = k / kNvFp4TileCols;
    const int64_t s = r / kNvFp4TileRows, kg = c / kNvFp4TileCols;
    const int rr = static_cast<int>(r % kNvFp4TileRows), i = static_cast<int>((c % 64) / 16);
    const int cc = static_cast<int>(c % 16);
    const FragmentSlot slot = fragment_slot(rr, cc);
    const uint8_t* word = codes + (s * groups + kg) * 512 + slot.lane * 16 + i * 4;
    uint32_t bits = word[0] | (word[1] << 8) | (word[2] << 16) | (static_cast<uint32_t>(word[3]) << 24);
    if (slot.high) bits >>= 16;
    const uint8_t code = static_cast<uint8_t>(((bits >> (3 * slot.pair)) & 0x7) |
                                              (((bits >> (15 - slot.pair)) & 1) << 3));
    const uint8_t scale_code = scales[(s * groups + kg) * 64 + (rr % 8) * 8 + (rr >= 8 ? 4 : 0) + i];
    // E5M3 back to a float: 2^(E - 10) x (1 + m / 8); code 0 is a zero scale.
    const float scale = scale_code == 0 ? 0.0f
                                        : std::ldexp(1.0f + (scale_code & 7) / 8.0f,
                                                     (scale_code >> 3) - 10);
    return e2m1_decode(code) * scale;
}

}  // namespace fourbit
