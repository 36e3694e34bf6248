// NVFP4's element type, E2M1: 4 bits = sign, 2 exponent bits (bias 1), 1 mantissa bit.
// Values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives; no infinities or NaN.
#pragma once

#include <cmath>
#include <cstdint>

namespace fourbit {

inline constexpr float kE2M1Max = 6.0f;

inline float e2m1_decode(uint8_t code) {
    static constexpr float kValues[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    return kValues[code & 0xf];
}

// Round to nearest, ties to the even code (0, 1, 2, 4 on exact midpoints), saturating at +-6.
// The sign bit is set for x < 0, as ModelOpt's encoder does: small negatives give code 8 (-0),
// while -0.0 itself gives code 0. NaN is not an input here (callers reject it first); it
// encodes as 0.
inline uint8_t e2m1_encode(float x) {
    const float a = std::fabs(x);
    uint8_t magnitude;
    if (a <= 0.25f) magnitude = 0;        // midpoint 0.25 -> 0 (even)
    else if (a < 0.75f) magnitude = 1;    // 0.5
    else if (a <= 1.25f) magnitude = 2;   // 1.0; midpoints 0.75 and 1.25 -> 1.0
    else if (a < 1.75f) magnitude = 3;    // 1.5
    else if (a <= 2.5f) magnitude = 4;    // 2.0; midpoints 1.75 and 2.5 -> 2.0
    else if (a < 3.5f) magnitude = 5;     // 3.0
    else if (a <= 5.0f) magnitude = 6;    // 4.0; midpoints 3.5 and 5 -> 4.0
    else magnitude = 7;                   // 6.0, saturating
    if (std::isnan(x)) magnitude = 0;
    return static_cast<uint8_t>((x < 0.0f ? 0x8 : 0x0) | magnitude);
}

}  // namespace fourbit
