#include "tensor/dtype.h"

#include <array>
#include <utility>

namespace fourbit {

namespace {

struct DTypeInfo {
    DType dtype;
    std::string_view name;
    size_t size_bytes;
};

constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {DType::f64, "F64", 8},
    {DType::f32, "F32", 4},
    {DType::f16, "F16", 2},
    {DType::bf16, "BF16", 2},
    {DType::f8_e4m3, "F8_E4M3", 1},
    {DType::f8_e5m2, "F8_E5M2", 1},
    {DType::i64, "I64", 8},
    {DType::i32, "I32", 4},
    {DType::i16, "I16", 2},
    {DType::i8, "I8", 1},
    {DType::u64, "U64", 8},
    {DType::u32, "U32", 4},
    {DType::u16, "U16", 2},
    {DType::u8, "U8", 1},
    {DType::boolean, "BOOL", 1},
}};

const DTypeInfo& info(DType dtype) {
    for (const auto& entry : kDTypes) {
        if (entry.dtype == dtype) return entry;
    }
    return kDTypes[0];  // unreachable: every enumerator is in the table
}

}  // namespace

size_t dtype_size_bytes(DType dtype) { return info(dtype).size_bytes; }

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
    for (const auto& entry : kDTypes) {
        if (entry.name == name) return entry.dtype;
    }
    return std::nullopt;
}

}  // namespace fourbit
