// The tests' own numeric oracle: values of narrow float codes and f32 error bounds, written from
// the formats' specifications in double. Independent of src/ on purpose: code under test never
// checks itself.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace fourbit::test_support {

// Unit roundoff of f32 (half an ulp of 1).
inline constexpr double kUnitRoundoff = 0x1.0p-24;

// Higham's gamma_n: |fl(sum of n rounded terms) - exact| <= gamma_n * sum |terms|, for any
// summation order, which covers every lane split and tail a SIMD dot product can use.
inline double gamma(int64_t n) { return n * kUnitRoundoff / (1.0 - n * kUnitRoundoff); }

// The value of a bf16 code: the top 16 bits of an f32.
inline double bf16_value(uint16_t code) {
    return std::bit_cast<float>(static_cast<uint32_t>(code) << 16);
}

// float8_e4m3fn per the OCP FP8 spec: 1-4-3, bias 7, subnormals, no infinities, S.1111.111 NaN.
inline double e4m3_value(uint8_t code) {
    const double sign = (code & 0x80u) ? -1.0 : 1.0;
    const int exponent = (code >> 3) & 0xf;
    const int mantissa = code & 0x7;
    if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<double>::quiet_NaN();
    if (exponent == 0) return sign * (mantissa / 8.0) * std::pow(2.0, -6);
    return sign * (1.0 + mantissa / 8.0) * std::pow(2.0, exponent - 7);
}

}  // namespace fourbit::test_support
