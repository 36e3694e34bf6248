// The CPU ops' inner loops, compiled three times (AVX-512, AVX2+FMA, baseline x86-64) from one
// source, kernels_impl.inc. kernels() picks a set once, at first use, from what cpuid reports,
// so one binary runs on any x86-64 host and uses the widest vectors it has. FOURBIT_CPU_ISA
// (avx512, avx2, generic) may force a narrower set, for tests and benchmarks.
#pragma once

#include <cstdint>

namespace fourbit::cpu {

struct Kernels {
    const char* isa;
    float (*dot_f32)(const float* a, const float* b, int64_t n);
    // sum_i bf16(w[i]) * x[i], accumulated in f32
    float (*dot_bf16_f32)(const uint16_t* w, const float* x, int64_t n);
    void (*bf16_to_f32)(const uint16_t* in, float* out, int64_t n);
    // out[i] = e4m3(in[i]) * scale
    void (*f8_e4m3_to_f32)(const uint8_t* in, float scale, float* out, int64_t n);
    // y[t * y_stride + r] = dot(w + r * k, x + t * x_stride, k) for r < rows, t < tokens:
    // the register-blocked tile of a matrix product whose weight panel is already f32.
    void (*matmul_panel)(const float* w, int rows, const float* x, int64_t x_stride, int tokens,
                         int64_t k, float* y, int64_t y_stride);
    // y[i] += a * x[i]
    void (*axpy)(float a, const float* x, float* y, int64_t n);
    // NVFP4 row against up to 8 activation rows: out[t] = sum over blocks b of
    // e4m3(scales[b]) * sum_i e2m1(code[16 b + i]) * x[t * x_stride + 16 b + i], k a multiple
    // of 16, two codes a byte (the even column in the low nibble). The caller applies the
    // global scale.
    void (*nvfp4_dot)(const uint8_t* packed, const uint8_t* scales, const float* x,
                      int64_t x_stride, int tokens, int64_t k, float* out);
    // out[i] = e2m1(code[i]) * e4m3(scales[i / 16]) * global_scale for i < k.
    void (*nvfp4_to_f32)(const uint8_t* packed, const uint8_t* scales, float global_scale,
                         float* out, int64_t k);
};

// The most activation rows nvfp4_dot takes at once.
inline constexpr int kNvFp4DotMaxTokens = 8;

const Kernels& kernels();

// The 256 values of float8_e4m3fn codes (NaN for 0x7f and 0xff).
const float* e4m3_table();

// The sets compiled into this binary, for tests that compare them with each other.
const Kernels& kernels_generic();
const Kernels& kernels_avx2();
const Kernels& kernels_avx512();
bool cpu_has_avx2();
bool cpu_has_avx512();

}  // namespace fourbit::cpu
