#include "tensor/numeric.h"

#include <array>

namespace fourbit {

uint8_t f32_to_f8_e4m3(float value) {
    if (std::isnan(value)) return 0x7f;
    uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
    float magnitude = std::fabs(value);
    if (magnitude >= 448.0f) return sign | 0x7e;
    // Search the 127 non-negative finite codes for the nearest; ties go to the even code.
    // Codes are ordered by value, so a binary search on decoded values is exact.
    uint8_t low = 0, high = 0x7e;
    while (high - low > 1) {
        uint8_t middle = static_cast<uint8_t>((low + high) / 2);
        if (f8_e4m3_to_f32(middle) <= magnitude) {
            low = middle;
        } else {
            high = middle;
        }
    }
    float below = f8_e4m3_to_f32(low);
    float above = f8_e4m3_to_f32(high);
    uint8_t code;
    if (magnitude - below < above - magnitude) {
        code = low;
    } else if (magnitude - below > above - magnitude) {
        code = high;
    } else {
        code = (low % 2 == 0) ? low : high;
    }
    return sign | code;
}

}  // namespace fourbit
