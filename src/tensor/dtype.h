// Element types of tensors on disk and in memory, with their safetensors names and sizes.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace fourbit {

enum class DType {
    f64,
    f32,
    f16,
    bf16,
    f8_e4m3,  // float8_e4m3fn: 1-4-3, no infinities, 0x7f/0xff are NaN, max 448
    f8_e5m2,
    i64,
    i32,
    i16,
    i8,
    u64,
    u32,
    u16,
    u8,
    boolean,
};

// Bytes per element.
size_t dtype_size_bytes(DType dtype);
// The safetensors spelling: "F32", "BF16", "F8_E4M3", ...
std::string_view dtype_name(DType dtype);
// Parses a safetensors dtype string; nullopt for anything unknown.
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace fourbit
