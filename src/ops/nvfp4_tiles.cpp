#include "ops/nvfp4_tiles.h"

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

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

// The scale byte re-encoded E5M3 (see the header), with what it does to its block's codes.
struct TileScale {
    uint8_t code = 0;
    bool zero = false;      // zeroes the block's codes
    bool negative = false;  // flips their signs
    bool nan = false;
};

TileScale tile_scale(uint8_t e4m3) {
    TileScale scale;
    const float value = f8_e4m3_to_f32(e4m3);
    scale.nan = std::isnan(value);
    scale.zero = value == 0.0f;
    scale.negative = value < 0.0f;
    if (scale.nan || scale.zero) return scale;
    int exponent = 0;
    const float fraction = std::frexp(std::fabs(value), &exponent);  // [0.5, 1) x 2^exponent
    const int e = exponent - 1;                                       // value = 2^e x (1 + m/8)
    const float mantissa = (fraction * 2.0f - 1.0f) * 8.0f;
    FOURBIT_ASSERT(e >= -9 && e <= 8 && mantissa == std::floor(mantissa),
                   "e4m3 {:#04x} has no E5M3 code", e4m3);
    scale.code = static_cast<uint8_t>(((e + 10) << 3) | static_cast<int>(mantissa));
    return scale;
}

// Every e4m3 byte's tile scale, made once.
const std::array<TileScale, 256>& tile_scales() {
    static const std::array<TileScale, 256> table = [] {
        std::array<TileScale, 256> t;
        for (int byte = 0; byte < 256; ++byte) t[byte] = tile_scale(static_cast<uint8_t>(byte));
        return t;
    }();
    return table;
}

// Where the scale of row rr (of a stripe) and block b sits in the stripe's scale bytes of
// block b's group (the header's entry g, k-tile byte pair).
int64_t scale_offset(int rr, int64_t b) { return (rr % 8) * 8 + 2 * (b % 4) + (rr >= 8 ? 1 : 0); }

// One code (sign in bit 3) as pair j's field of a half-word.
uint32_t field_bits(uint32_t code, int j) {
    return ((code & 0x7u) << kNvFp4PairMagnitude[j]) | (((code >> 3) & 1u) << kNvFp4PairSign[j]);
}

// A source byte (codes of columns 2c and 2c + 1) as fragment pair j of a word: low code -> low
// half-word, high code -> high half-word.
uint32_t pair_bits(uint32_t byte, int j) {
    return field_bits(byte & 0xfu, j) | (field_bits(byte >> 4, j) << 16);
}

// pair_bits for every byte and pair, made once: a word is then four lookups.
const std::array<std::array<uint32_t, 256>, 4>& pair_table() {
    static const std::array<std::array<uint32_t, 256>, 4> table = [] {
        std::array<std::array<uint32_t, 256>, 4> t;
        for (int j = 0; j < 4; ++j) {
            for (uint32_t byte = 0; byte < 256; ++byte) t[j][byte] = pair_bits(byte, j);
        }
        return t;
    }();
    return table;
}

}  // namespace

void nvfp4_to_tiles(int64_t n, int64_t k, const std::function<NvFp4SourceRow(int64_t)>& source_row,
                    uint8_t* codes, uint8_t* scales, const char* what) {
    if (n % kNvFp4TileRows != 0 || k % kNvFp4TileCols != 0) {
        fail("{}: NVFP4 [{}, {}] on CUDA needs rows in multiples of {} and columns in multiples "
             "of {}",
             what, n, k, kNvFp4TileRows, kNvFp4TileCols);
    }
    const int64_t groups = k / kNvFp4TileCols, blocks = k / 16;
    std::vector<NvFp4SourceRow> rows(n);
    for (int64_t r = 0; r < n; ++r) rows[r] = source_row(r);
    // Scales first, serially: a NaN is reported here, outside any parallel region.
    const std::array<TileScale, 256>& table = tile_scales();
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t b = 0; b < blocks; ++b) {
            const TileScale& scale = table[rows[r].scales[b]];
            if (scale.nan) {
                fail("{}: NaN block scale (e4m3 byte {:#04x}) at row {}, block {}", what,
                     rows[r].scales[b], r, b);
            }
            const int64_t s = r / kNvFp4TileRows, rr = r % kNvFp4TileRows;
            scales[(s * groups + b / 4) * 64 + scale_offset(static_cast<int>(rr), b)] = scale.code;
        }
    }
    // Codes: each lane's word of each k-tile from four source bytes (rows g and g + 8, columns
    // 2t.. and 2t+8..), with its blocks' zero / negative scales applied.
    const std::array<std::array<uint32_t, 256>, 4>& pairs = pair_table();
#pragma omp parallel for schedule(static) if (n * k >= (int64_t(1) << 20))
    for (int64_t s = 0; s < n / kNvFp4TileRows; ++s) {
        for (int64_t b = 0; b < blocks; ++b) {
            uint8_t* tile_codes = codes + (s * groups + b / 4) * 512 + (b % 4) * 4;
            for (int g = 0; g < 8; ++g) {
                const NvFp4SourceRow& top = rows[s * kNvFp4TileRows + g];
                const NvFp4SourceRow& bottom = rows[s * kNvFp4TileRows + g + 8];
                // byte & keep ^ flip: a zero scale keeps nothing, a negative one flips both signs.
                const TileScale& top_scale = table[top.scales[b]];
                const TileScale& bottom_scale = table[bottom.scales[b]];
                const uint32_t top_keep = top_scale.zero ? 0u : 0xffu;
                const uint32_t top_flip = top_scale.negative ? 0x88u : 0u;
                const uint32_t bottom_keep = bottom_scale.zero ? 0u : 0xffu;
                const uint32_t bottom_flip = bottom_scale.negative ? 0x88u : 0u;
                const uint8_t* top_bytes = top.codes + 8 * b;
                const uint8_t* bottom_bytes = bottom.codes + 8 * b;
                for (int t = 0; t < 4; ++t) {
                    const uint32_t word = pairs[0][(top_bytes[t] & top_keep) ^ top_flip] |
                                          pairs[1][(bottom_bytes[t] & bottom_keep) ^ bottom_flip] |
                                          pairs[2][(top_bytes[t + 4] & top_keep) ^ top_flip] |
                                          pairs[3][(bottom_bytes[t + 4] & bottom_keep) ^ bottom_flip];
                    std::memcpy(tile_codes + (4 * g + t) * 16, &word, 4);  // little-endian bytes
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
    const uint8_t code = static_cast<uint8_t>(((bits >> kNvFp4PairMagnitude[slot.pair]) & 0x7) |
                                              (((bits >> kNvFp4PairSign[slot.pair]) & 1) << 3));
    const uint8_t scale_code = scales[(s * groups + kg) * 64 + scale_offset(rr, i)];
    // E5M3 back to a float: 2^(E - 10) x (1 + m / 8); code 0 is a zero scale.
    const float scale = scale_code == 0 ? 0.0f
                                        : std::ldexp(1.0f + (scale_code & 7) / 8.0f,
                                                     (scale_code >> 3) - 10);
    return e2m1_decode(code) * scale;
}

}  // namespace fourbit
