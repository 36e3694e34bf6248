// Narrow float conversions (bf16, f16, float8_e4m3fn), dtype names and sizes, and Tensor views.
// Every expected value comes from a formula or a brute-force search written here in double,
// never from the code under test.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "support/reference_values.h"
#include "tensor/dtype.h"
#include "tensor/numeric.h"
#include "tensor/tensor.h"

namespace fourbit {
namespace {

// ---- independent references -----------------------------------------------------------------

using test_support::e4m3_value;

// The value of a bf16 code, or +-2^128 for the infinities: the overflow threshold of
// round-to-nearest treats "one past the largest finite" as if the exponent range went on.
double bf16_extended_value(uint32_t code) {
    const bool negative = (code & 0x8000u) != 0;
    const uint32_t exponent = (code >> 7) & 0xffu;
    const uint32_t mantissa = code & 0x7fu;
    double magnitude;
    if (exponent == 0) {
        magnitude = std::ldexp(static_cast<double>(mantissa), -133);  // m/128 * 2^-126
    } else if (exponent == 0xff) {
        magnitude = std::ldexp(1.0, 128);
    } else {
        magnitude = std::ldexp(1.0 + mantissa / 128.0, static_cast<int>(exponent) - 127);
    }
    return negative ? -magnitude : magnitude;
}

// Round-to-nearest-even f32 -> bf16 by comparing the two neighbouring bf16 codes in double.
uint16_t reference_f32_to_bf16(float value) {
    const uint32_t bits = std::bit_cast<uint32_t>(value);
    const uint32_t toward_zero = bits >> 16;  // truncation keeps the sign, shrinks the magnitude
    if ((bits & 0xffffu) == 0) return static_cast<uint16_t>(toward_zero);
    const uint32_t away = toward_zero + 1;
    const double below = std::fabs(bf16_extended_value(toward_zero));
    const double above = std::fabs(bf16_extended_value(away));
    const double magnitude = std::fabs(static_cast<double>(value));
    if (magnitude - below < above - magnitude) return static_cast<uint16_t>(toward_zero);
    if (magnitude - below > above - magnitude) return static_cast<uint16_t>(away);
    return static_cast<uint16_t>((toward_zero % 2 == 0) ? toward_zero : away);
}

// IEEE binary16: 1-5-10, bias 15.
double reference_f16_value(uint16_t code) {
    const double sign = (code & 0x8000u) ? -1.0 : 1.0;
    const int exponent = (code >> 10) & 0x1f;
    const int mantissa = code & 0x3ff;
    if (exponent == 0x1f) {
        return mantissa == 0 ? sign * std::numeric_limits<double>::infinity()
                             : std::numeric_limits<double>::quiet_NaN();
    }
    if (exponent == 0) return sign * mantissa * std::pow(2.0, -24);
    return sign * (1.0 + mantissa / 1024.0) * std::pow(2.0, exponent - 15);
}

// Nearest e4m3 code by brute force over the 127 non-negative finite codes, ties to the even
// code, magnitudes beyond 448 saturated.
uint8_t reference_f32_to_e4m3(float value) {
    const double magnitude = std::fabs(static_cast<double>(value));
    const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
    uint8_t best = 0;
    double best_distance = std::numeric_limits<double>::infinity();
    for (int code = 0; code <= 0x7e; ++code) {
        const double distance = std::fabs(e4m3_value(static_cast<uint8_t>(code)) - magnitude);
        if (distance < best_distance || (distance == best_distance && code % 2 == 0)) {
            best = static_cast<uint8_t>(code);
            best_distance = distance;
        }
    }
    return sign | best;
}

// ---- bf16 -----------------------------------------------------------------------------------

TEST(Bf16, DecodesKnownCodes) {
    EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
    EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
    EXPECT_EQ(bf16_to_f32(0x3e80), 0.25f);
    EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
    EXPECT_EQ(bf16_to_f32(0x7f80), std::numeric_limits<float>::infinity());
    EXPECT_EQ(bf16_to_f32(0xff80), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
    EXPECT_TRUE(std::signbit(bf16_to_f32(0x8000)));
}

TEST(Bf16, DecodesEveryCodeLikeTheFormula) {
    for (uint32_t code = 0; code < 0x10000; ++code) {
        const uint32_t exponent = (code >> 7) & 0xffu;
        const float value = bf16_to_f32(static_cast<uint16_t>(code));
        if (exponent == 0xff) {
            if ((code & 0x7f) == 0) {
                EXPECT_TRUE(std::isinf(value)) << std::hex << code;
            } else {
                EXPECT_TRUE(std::isnan(value)) << std::hex << code;
            }
            continue;
        }
        ASSERT_EQ(static_cast<double>(value), bf16_extended_value(code)) << std::hex << code;
    }
}

TEST(Bf16, RoundsExactTiesToEven) {
    // 1.0 + half a bf16 ulp: between 0x3f80 (even) and 0x3f81 -> 0x3f80.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);
    // Between 0x3f81 (odd) and 0x3f82 (even) -> 0x3f82.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);
    // Negative ties follow the magnitude.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0xbf808000u)), 0xbf80);
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0xbf818000u)), 0xbf82);
    // Just off the tie goes to the nearer neighbour.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f807fffu)), 0x3f80);
    // A tie whose rounding carries into the exponent.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3fffc000u)), 0x4000);
    // Subnormal tie.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x00018000u)), 0x0002);
}

TEST(Bf16, InfinitiesAndOverflow) {
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(f32_to_bf16(inf), 0x7f80);
    EXPECT_EQ(f32_to_bf16(-inf), 0xff80);
    // The largest f32 lies past the midpoint between bf16's largest finite and 2^128.
    EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
    // Largest finite bf16 itself is kept.
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7f7f0000u)), 0x7f7f);
}

TEST(Bf16, NanStaysNan) {
    // Payloads that truncation would turn into an infinity must still come back NaN.
    for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu}) {
        const uint16_t code = f32_to_bf16(std::bit_cast<float>(bits));
        EXPECT_TRUE(std::isnan(bf16_to_f32(code))) << std::hex << bits << " -> " << code;
    }
}

TEST(Bf16, RoundTripsEveryFiniteCode) {
    for (uint32_t code = 0; code < 0x10000; ++code) {
        if (((code >> 7) & 0xff) == 0xff) continue;
        ASSERT_EQ(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(code))), code) << std::hex << code;
    }
}

TEST(Bf16, MatchesNearestEvenReferenceOnRandomFloats) {
    std::mt19937 rng(1234);
    for (int i = 0; i < 200000; ++i) {
        uint32_t bits = rng();
        // Force a share of exact and near ties, which random bits hit rarely.
        if (i % 4 == 1) bits = (bits & 0xffff0000u) | 0x8000u;
        if (i % 4 == 2) bits = (bits & 0xffff0000u) | (0x8000u + (rng() % 3) - 1);
        const float value = std::bit_cast<float>(bits);
        if (std::isnan(value)) continue;
        ASSERT_EQ(f32_to_bf16(value), reference_f32_to_bf16(value)) << std::hex << bits;
    }
}

// ---- f16 ------------------------------------------------------------------------------------

TEST(F16, DecodesKnownCodes) {
    EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
    EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
    EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
    EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
    EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
    EXPECT_EQ(f16_to_f32(0x03ff), 1023.0f * std::ldexp(1.0f, -24));
    EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
    EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
    EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
    EXPECT_TRUE(std::isnan(f16_to_f32(0xfc01)));
    EXPECT_EQ(f16_to_f32(0x8000), 0.0f);
    EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(F16, DecodesEveryCodeLikeTheFormula) {
    for (uint32_t code = 0; code < 0x10000; ++code) {
        const double expected = reference_f16_value(static_cast<uint16_t>(code));
        const float value = f16_to_f32(static_cast<uint16_t>(code));
        if (std::isnan(expected)) {
            ASSERT_TRUE(std::isnan(value)) << std::hex << code;
        } else {
            ASSERT_EQ(static_cast<double>(value), expected) << std::hex << code;
            ASSERT_EQ(std::signbit(value), (code & 0x8000) != 0) << std::hex << code;
        }
    }
}

// ---- float8_e4m3fn --------------------------------------------------------------------------

TEST(E4m3, DecodesSpotValues) {
    EXPECT_EQ(f8_e4m3_to_f32(0x38), 1.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x7e), 448.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
    EXPECT_EQ(f8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
    EXPECT_EQ(f8_e4m3_to_f32(0x07), 7.0f * std::ldexp(1.0f, -9));  // largest subnormal
    EXPECT_EQ(f8_e4m3_to_f32(0xb8), -1.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0xfe), -448.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x40), 2.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x3c), 1.5f);
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0x7f)));
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0xff)));
    // No infinities in the fn variant: S.1111.xxx other than 111 are ordinary numbers.
    EXPECT_EQ(f8_e4m3_to_f32(0x78), 256.0f);
    EXPECT_EQ(f8_e4m3_to_f32(0x00), 0.0f);
    EXPECT_TRUE(std::signbit(f8_e4m3_to_f32(0x80)));
}

TEST(E4m3, DecodesAll256CodesLikeTheFormula) {
    int nan_count = 0;
    for (int code = 0; code < 256; ++code) {
        const double expected = e4m3_value(static_cast<uint8_t>(code));
        const float value = f8_e4m3_to_f32(static_cast<uint8_t>(code));
        if (std::isnan(expected)) {
            ++nan_count;
            EXPECT_TRUE(std::isnan(value)) << code;
        } else {
            EXPECT_EQ(static_cast<double>(value), expected) << code;
            EXPECT_EQ(std::signbit(value), code >= 0x80) << code;
        }
    }
    EXPECT_EQ(nan_count, 2);
}

TEST(E4m3, RoundTripsEveryFiniteCode) {
    for (int code = 0; code < 256; ++code) {
        if ((code & 0x7f) == 0x7f) continue;
        EXPECT_EQ(f32_to_f8_e4m3(f8_e4m3_to_f32(static_cast<uint8_t>(code))), code) << code;
    }
}

TEST(E4m3, TiesBetweenNeighboursGoToTheEvenCode) {
    for (int code = 0; code < 0x7e; ++code) {
        const double low = e4m3_value(static_cast<uint8_t>(code));
        const double high = e4m3_value(static_cast<uint8_t>(code + 1));
        const float middle = static_cast<float>((low + high) / 2);  // exact: 4 significant bits
        ASSERT_EQ(static_cast<double>(middle), (low + high) / 2);
        const uint8_t even = static_cast<uint8_t>(code % 2 == 0 ? code : code + 1);
        EXPECT_EQ(f32_to_f8_e4m3(middle), even) << "tie between " << low << " and " << high;
        EXPECT_EQ(f32_to_f8_e4m3(-middle), 0x80 | even) << "tie between " << -low << " and "
                                                         << -high;
        // One f32 ulp either side of the tie picks the nearer neighbour.
        EXPECT_EQ(f32_to_f8_e4m3(std::nextafter(middle, 0.0f)), code) << middle;
        EXPECT_EQ(f32_to_f8_e4m3(std::nextafter(middle, 1000.0f)), code + 1) << middle;
    }
}

TEST(E4m3, SaturatesToMax) {
    const float inf = std::numeric_limits<float>::infinity();
    for (float value : {448.0f, 449.0f, 463.9f, 464.0f, 480.0f, 1000.0f, 1e30f, inf}) {
        EXPECT_EQ(f32_to_f8_e4m3(value), 0x7e) << value;
        EXPECT_EQ(f32_to_f8_e4m3(-value), 0xfe) << -value;
    }
}

TEST(E4m3, NanStaysNan) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(f32_to_f8_e4m3(nan))));
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(f32_to_f8_e4m3(-nan))));
    EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(f32_to_f8_e4m3(std::bit_cast<float>(0x7f800001u)))));
}

TEST(E4m3, UnderflowRoundsToZeroOrSmallestSubnormal) {
    const float smallest = std::ldexp(1.0f, -9);
    EXPECT_EQ(f32_to_f8_e4m3(smallest / 2), 0x00);  // tie with zero: zero is even
    EXPECT_EQ(f32_to_f8_e4m3(std::nextafter(smallest / 2, 1.0f)), 0x01);
    EXPECT_EQ(f32_to_f8_e4m3(1e-30f), 0x00);
    EXPECT_EQ(f32_to_f8_e4m3(-1e-30f), 0x80);
    EXPECT_EQ(f32_to_f8_e4m3(-0.0f), 0x80);
}

TEST(E4m3, MatchesBruteForceNearestOnRandomValues) {
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> exponent(-14.0f, 10.0f);
    for (int i = 0; i < 100000; ++i) {
        float value = std::exp2(exponent(rng));
        if (rng() % 2) value = -value;
        ASSERT_EQ(f32_to_f8_e4m3(value), reference_f32_to_e4m3(value)) << value;
    }
}

// ---- dtypes ---------------------------------------------------------------------------------

constexpr DType kAllDTypes[] = {DType::f64,     DType::f32, DType::f16, DType::bf16,
                                DType::f8_e4m3, DType::f8_e5m2, DType::i64, DType::i32,
                                DType::i16,     DType::i8,  DType::u64, DType::u32,
                                DType::u16,     DType::u8,  DType::boolean};

TEST(DTypes, NamesRoundTrip) {
    for (DType dtype : kAllDTypes) {
        auto parsed = dtype_from_name(dtype_name(dtype));
        ASSERT_TRUE(parsed.has_value()) << dtype_name(dtype);
        EXPECT_EQ(*parsed, dtype) << dtype_name(dtype);
    }
}

TEST(DTypes, NamesAreDistinct) {
    for (DType a : kAllDTypes) {
        for (DType b : kAllDTypes) {
            if (a != b) {
                EXPECT_NE(dtype_name(a), dtype_name(b));
            }
        }
    }
}

TEST(DTypes, SafetensorsSpellings) {
    EXPECT_EQ(dtype_name(DType::f32), "F32");
    EXPECT_EQ(dtype_name(DType::f64), "F64");
    EXPECT_EQ(dtype_name(DType::f16), "F16");
    EXPECT_EQ(dtype_name(DType::bf16), "BF16");
    EXPECT_EQ(dtype_name(DType::f8_e4m3), "F8_E4M3");
    EXPECT_EQ(dtype_name(DType::f8_e5m2), "F8_E5M2");
    EXPECT_EQ(dtype_name(DType::i64), "I64");
    EXPECT_EQ(dtype_name(DType::u8), "U8");
    EXPECT_EQ(dtype_name(DType::boolean), "BOOL");
}

TEST(DTypes, UnknownNameIsNullopt) {
    for (const char* name : {"", "F33", "FP32", "float32", "BF 16", "F8_E4M3FN", "I128"}) {
        EXPECT_FALSE(dtype_from_name(name).has_value()) << name;
    }
}

TEST(DTypes, Sizes) {
    EXPECT_EQ(dtype_size_bytes(DType::f64), 8u);
    EXPECT_EQ(dtype_size_bytes(DType::f32), 4u);
    EXPECT_EQ(dtype_size_bytes(DType::f16), 2u);
    EXPECT_EQ(dtype_size_bytes(DType::bf16), 2u);
    EXPECT_EQ(dtype_size_bytes(DType::f8_e4m3), 1u);
    EXPECT_EQ(dtype_size_bytes(DType::f8_e5m2), 1u);
    EXPECT_EQ(dtype_size_bytes(DType::i64), 8u);
    EXPECT_EQ(dtype_size_bytes(DType::i32), 4u);
    EXPECT_EQ(dtype_size_bytes(DType::i16), 2u);
    EXPECT_EQ(dtype_size_bytes(DType::i8), 1u);
    EXPECT_EQ(dtype_size_bytes(DType::u64), 8u);
    EXPECT_EQ(dtype_size_bytes(DType::u32), 4u);
    EXPECT_EQ(dtype_size_bytes(DType::u16), 2u);
    EXPECT_EQ(dtype_size_bytes(DType::u8), 1u);
    EXPECT_EQ(dtype_size_bytes(DType::boolean), 1u);
}

// ---- Tensor ---------------------------------------------------------------------------------

TEST(Tensor, ZerosAreZeroAndAligned) {
    Tensor tensor = Tensor::zeros(DType::bf16, {3, 5});
    EXPECT_EQ(tensor.numel(), 15);
    EXPECT_EQ(tensor.size_bytes(), 30u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(tensor.raw()) % 64, 0u);
    for (int64_t i = 0; i < tensor.numel(); ++i) EXPECT_EQ(tensor.data<uint16_t>()[i], 0);
}

TEST(Tensor, RowsViewSharesStorage) {
    Tensor tensor = Tensor::zeros(DType::f32, {4, 3});
    for (int i = 0; i < 12; ++i) tensor.data<float>()[i] = static_cast<float>(i);

    Tensor view = tensor.rows(1, 2);
    EXPECT_EQ(view.shape(), Shape({2, 3}));
    EXPECT_EQ(view.dtype(), DType::f32);
    EXPECT_EQ(view.data<float>(), tensor.data<float>() + 3);
    EXPECT_EQ(view.data<float>()[0], 3.0f);
    EXPECT_EQ(view.data<float>()[5], 8.0f);

    // Writes through the view land in the original, and the other way round.
    view.data<float>()[1] = -1.0f;
    EXPECT_EQ(tensor.data<float>()[4], -1.0f);
    tensor.data<float>()[8] = 42.0f;
    EXPECT_EQ(view.data<float>()[5], 42.0f);
}

TEST(Tensor, RowsOfHigherRankAndNarrowDtype) {
    Tensor tensor = Tensor::zeros(DType::bf16, {5, 2, 3});  // 6 elements, 12 bytes per row
    Tensor view = tensor.rows(3, 2);
    EXPECT_EQ(view.shape(), Shape({2, 2, 3}));
    EXPECT_EQ(static_cast<const uint8_t*>(view.raw()),
              static_cast<const uint8_t*>(tensor.raw()) + 3 * 12);
    Tensor empty = tensor.rows(5, 0);
    EXPECT_EQ(empty.numel(), 0);
}

TEST(Tensor, ViewOutlivesTheOriginalHandle) {
    Tensor view;
    {
        Tensor tensor = Tensor::zeros(DType::i32, {3, 2});
        for (int i = 0; i < 6; ++i) tensor.data<int32_t>()[i] = 10 + i;
        view = tensor.rows(2, 1);
    }
    // The view keeps the storage alive (ASan would flag a use after free here).
    EXPECT_EQ(view.data<int32_t>()[0], 14);
    EXPECT_EQ(view.data<int32_t>()[1], 15);
}

TEST(Tensor, ShapeHelpers) {
    EXPECT_EQ(shape_numel({2, 3, 4}), 24);
    EXPECT_EQ(shape_numel({}), 1);
    EXPECT_EQ(shape_text({2, 3}), "[2, 3]");
    Tensor tensor = Tensor::zeros(DType::f32, {2, 7});
    EXPECT_EQ(tensor.dim(-1), 7);
    EXPECT_EQ(tensor.rank(), 2);
}

}  // namespace
}  // namespace fourbit
