#include "ops/cpu/kernels.h"

#include <array>
#include <cstdlib>
#include <string_view>

#include "tensor/numeric.h"
#include "util/error.h"
#include "util/log.h"

namespace fourbit::cpu {

namespace generic {
const Kernels& make_kernels();
}
namespace avx2 {
const Kernels& make_kernels();
}
namespace avx512 {
const Kernels& make_kernels();
}

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

bool cpu_has_avx512() {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}

const Kernels& kernels_generic() { return generic::make_kernels(); }
const Kernels& kernels_avx2() { return avx2::make_kernels(); }
const Kernels& kernels_avx512() { return avx512::make_kernels(); }

namespace {

const Kernels& choose() {
    const char* forced = std::getenv("FOURBIT_CPU_ISA");
    std::string_view wanted = forced ? forced : "";
    if (!wanted.empty() && wanted != "avx512" && wanted != "avx2" && wanted != "generic") {
        fail("FOURBIT_CPU_ISA='{}' is not one of avx512, avx2, generic", wanted);
    }
    const Kernels* chosen = &kernels_generic();
    if (cpu_has_avx512() && (wanted.empty() || wanted == "avx512")) {
        chosen = &kernels_avx512();
    } else if (cpu_has_avx2() && (wanted.empty() || wanted == "avx512" || wanted == "avx2")) {
        chosen = &kernels_avx2();
    }
    spdlog::debug("cpu kernels: {}", chosen->isa);
    return *chosen;
}

}  // namespace

const float* e4m3_table() {
    static const auto table = [] {
        std::array<float, 256> values{};
        for (int code = 0; code < 256; ++code) values[code] = f8_e4m3_to_f32(code);
        return values;
    }();
    return table.data();
}

const Kernels& kernels() {
    static const Kernels& chosen = choose();
    return chosen;
}

}  // namespace fourbit::cpu
