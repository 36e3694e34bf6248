// The CUDA NVFP4 tile layout, checked on the host (CI has no GPU): every element survives the
// repack, and the very decode functions the kernels run turn each lane's words into the mma A
// fragment (row g / g+8, columns 2t.. / 2t+8.., as the PTX ISA defines m16n8k16) with products
// exactly e2m1 x scale x 2^-19, for every code against every finite e4m3 scale.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "ops/nvfp4_tiles.h"
#include "support/reference_values.h"
#include "util/error.h"

namespace fourbit {
namespace {

using test_support::e4m3_value;

double e2m1_reference(uint8_t code) {
    static constexpr double kMagnitudes[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    return (code & 8 ? -1.0 : 1.0) * kMagnitudes[code & 7];
}

struct Source {
    int64_t n, k;
    std::vector<uint8_t> codes, scales;  // row-major, as a checkpoint holds them
    uint8_t code(int64_t r, int64_t c) const { return (codes[r * k / 2 + c / 2] >> (4 * (c % 2))) & 0xf; }
    uint8_t scale(int64_t r, int64_t c) const { return scales[r * k / 16 + c / 16]; }
};

Source random_source(int64_t n, int64_t k, std::mt19937& rng) {
    Source s{n, k, std::vector<uint8_t>(n * k / 2), std::vector<uint8_t>(n * k / 16)};
    for (uint8_t& byte : s.codes) byte = static_cast<uint8_t>(rng());
    for (uint8_t& byte : s.scales) {
        do byte = static_cast<uint8_t>(rng()); while ((byte & 0x7f) == 0x7f);  // no NaN
    }
    s.scales[0] = 0x00;  // a zero scale
    s.scales[1] = 0x80;  // negative zero
    s.scales[2] = 0x01;  // the smallest subnormal, 2^-9
    s.scales[3] = 0xfe;  // -448
    return s;
}

struct Tiled {
    std::vector<uint8_t> codes, scales;
};

Tiled tile(const Source& s) {
    Tiled t{std::vector<uint8_t>(s.n * s.k / 2), std::vector<uint8_t>(s.n * s.k / 16)};
    nvfp4_to_tiles(
        s.n, s.k,
        [&](int64_t r) { return NvFp4SourceRow{&s.codes[r * s.k / 2], &s.scales[r * s.k / 16]}; },
        t.codes.data(), t.scales.data(), "test");
    return t;
}

double bf16_bits_value(uint32_t bits16) { return std::bit_cast<float>(bits16 << 16); }

TEST(Nvfp4Tiles, EveryElementSurvivesTheRepack) {
    std::mt19937 rng(1);
    const Source s = random_source(48, 192, rng);
    const Tiled t = tile(s);
    for (int64_t r = 0; r < s.n; ++r) {
        for (int64_t c = 0; c < s.k; ++c) {
            const double expected = e2m1_reference(s.code(r, c)) * e4m3_value(s.scale(r, c));
            ASSERT_EQ(nvfp4_tiles_value(t.codes.data(), t.scales.data(), s.k, r, c), expected)
                << "[" << r << ", " << c << "]";
        }
    }
}

// Runs the kernels' decode on every lane of every tile and places each product by the mma A
// fragment's definition: it must be the element's value x 2^-19, exactly, as a bf16.
void expect_fragments_decode(const Source& s) {
    const Tiled t = tile(s);
    const int64_t groups = s.k / kNvFp4TileCols;
    for (int64_t stripe = 0; stripe < s.n / 16; ++stripe) {
        for (int64_t kg = 0; kg < groups; ++kg) {
            const int64_t tile_index = stripe * groups + kg;
            for (int lane = 0; lane < 32; ++lane) {
                const int g = lane / 4, lt = lane % 4;
                const uint8_t* word_bytes = &t.codes[tile_index * 512 + lane * 16];
                const uint8_t* scale_bytes = &t.scales[tile_index * 64 + g * 8];
                uint32_t scale_words[2] = {0, 0};  // the lane's uint2 of scales
                for (int b = 0; b < 8; ++b) {
                    scale_words[b / 4] |= static_cast<uint32_t>(scale_bytes[b]) << (8 * (b % 4));
                }
                for (int i = 0; i < 4; ++i) {
                    uint32_t word = 0;
                    for (int b = 0; b < 4; ++b) word |= static_cast<uint32_t>(word_bytes[i * 4 + b]) << (8 * b);
                    uint32_t a[4];
                    nvfp4_tile_word_to_bf16x2(word, a);
                    // Half 0 scales row g (pairs 0, 2), half 1 row g + 8 (pairs 1, 3).
                    const uint32_t scales = nvfp4_tile_scale_bf16x2(scale_words[i / 2], i % 2);
                    for (int j = 0; j < 4; ++j) {
                        for (int half = 0; half < 2; ++half) {
                            const int64_t row = stripe * 16 + g + 8 * (j & 1);
                            const int64_t col = kg * 64 + i * 16 + 2 * lt + 8 * (j >> 1) + half;
                            const double code_value = bf16_bits_value((a[j] >> (16 * half)) & 0xffff);
                            const uint32_t scale = (scales >> (16 * (j & 1))) & 0xffff;
                            const double product = code_value * bf16_bits_value(scale);
                            const double expected =
                                e2m1_reference(s.code(row, col)) * e4m3_value(s.scale(row, col));
                            ASSERT_EQ(std::ldexp(product, kNvFp4TileExponent), expected)
                                << "[" << row << ", " << col << "]";
                            // The device multiplies in bf16: the product must be a bf16 (in the
                            // normal range, 8 significant bits) for that to be exact.
                            const float as_float = static_cast<float>(product);
                            ASSERT_EQ(std::bit_cast<uint32_t>(as_float) & 0xffffu, 0u) << product;
                            ASSERT_TRUE(product == 0 || std::fabs(product) >= 0x1p-126) << product;
                        }
                    }
                }
            }
        }
    }
}

TEST(Nvfp4Tiles, KernelDecodeGivesTheMmaFragmentExactly) {
    std::mt19937 rng(2);
    expect_fragments_decode(random_source(32, 128, rng));
}

TEST(Nvfp4Tiles, EveryCodeAgainstEveryFiniteScale) {
    // 16 rows x 64 columns per tile; row r, block b holds one scale, columns cycle all 16 codes.
    std::vector<uint8_t> finite_scales;
    for (int byte = 0; byte < 256; ++byte) {
        if ((byte & 0x7f) != 0x7f) finite_scales.push_back(static_cast<uint8_t>(byte));
    }
    const int64_t k = 64, n = ((finite_scales.size() + 3) / 4 + 15) / 16 * 16;
    Source s{n, k, std::vector<uint8_t>(n * k / 2), std::vector<uint8_t>(n * k / 16, 0x38)};
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < k; c += 2) {
            s.codes[r * k / 2 + c / 2] = static_cast<uint8_t>((c % 16) | (((c + 1 + r) % 16) << 4));
        }
    }
    for (size_t i = 0; i < finite_scales.size(); ++i) s.scales[i] = finite_scales[i];
    expect_fragments_decode(s);
}

TEST(Nvfp4Tiles, RejectsShapesAndNanScalesByName) {
    std::mt19937 rng(3);
    Source s = random_source(32, 128, rng);
    std::vector<uint8_t> codes(s.codes.size()), scales(s.scales.size());
    auto rows = [&](int64_t r) { return NvFp4SourceRow{&s.codes[r * 64], &s.scales[r * 8]}; };
    EXPECT_THROW(nvfp4_to_tiles(24, 128, rows, codes.data(), scales.data(), "w"), Error);
    EXPECT_THROW(nvfp4_to_tiles(32, 96, rows, codes.data(), scales.data(), "w"), Error);
    s.scales[17] = 0x7f;
    try {
        nvfp4_to_tiles(32, 128, rows, codes.data(), scales.data(), "layer.q_proj");
        FAIL() << "a NaN scale was accepted";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("layer.q_proj"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("NaN"), std::string::npos) << error.what();
    }
}

}  // namespace
}  // namespace fourbit
