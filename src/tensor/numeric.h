// Scalar conversions between f32 and the narrow float formats checkpoints use. Header-only and
// branch-light: the CPU ops call these in inner loops.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace fourbit {

inline float bf16_to_f32(uint16_t bits) {
    return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float value) {
    uint32_t bits = std::bit_cast<uint32_t>(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float f16_to_f32(uint16_t bits) {
    uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    uint32_t exponent = (bits >> 10) & 0x1fu;
    uint32_t mantissa = bits & 0x3ffu;
    if (exponent == 0) {
        // zero or subnormal: mantissa * 2^-24
        float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 0x1f) {
        return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
    }
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// float8_e4m3fn: bias 7, subnormals, no infinities; S.1111.111 is NaN. Max finite 448.
inline float f8_e4m3_to_f32(uint8_t bits) {
    uint32_t exponent = (bits >> 3) & 0xfu;
    uint32_t mantissa = bits & 0x7u;
    float magnitude;
    if (exponent == 0xf && mantissa == 0x7) {
        magnitude = std::nanf("");
    } else if (exponent == 0) {
        magnitude = std::ldexp(static_cast<float>(mantissa), -9);  // mantissa/8 * 2^-6
    } else {
        magnitude = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f,
                               static_cast<int>(exponent) - 7);
    }
    return (bits & 0x80u) ? -magnitude : magnitude;
}

// Round to nearest even, saturating to +-448 (what torch's .to(float8_e4m3fn) does for finite
// values is saturation-free; quantizers clamp first, so saturation is the safe choice here).
uint8_t f32_to_f8_e4m3(float value);

}  // namespace fourbit
