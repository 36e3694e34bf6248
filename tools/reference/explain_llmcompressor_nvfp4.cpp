// Explains every difference between llmcompressor's NVFP4 weights and fourbit's on the same BF16
// model (tools/reference/check_quantize.py step C writes llmcompressor's model-free output into
// OUT/llmcompressor_nvfp4a16): which arithmetic reproduces its global scales, block scales and
// codes byte for byte. Off CI; built by hand against a build folder:
//   g++ -std=c++20 -O2 -Isrc tools/reference/explain_llmcompressor_nvfp4.cpp \
//     build/src/formats/libfourbit_formats.a build/src/nvfp4/libfourbit_nvfp4.a \
//     build/src/tensor/libfourbit_tensor.a build/src/util/libfourbit_util.a \
//     -lpcre2-8 -lfmt -lspdlog -o explain && ./explain BF16_DIR LLMCOMPRESSOR_DIR
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "nvfp4/e2m1.h"
#include "tensor/numeric.h"

using namespace fourbit;

namespace {

float to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// The members of the fused group vLLM loads `module` with (q/k/v, an expert's w1/w3).
std::vector<std::string> fused_group(const std::string& module) {
    auto swap = [&](const std::string& tail, std::vector<std::string> members) {
        const std::string prefix = module.substr(0, module.size() - tail.size());
        for (std::string& m : members) m = prefix + m;
        return members;
    };
    for (const char* t : {"q_proj", "k_proj", "v_proj"}) {
        if (module.ends_with(t)) return swap(t, {"q_proj", "k_proj", "v_proj"});
    }
    for (const char* t : {"w1", "w3"}) {
        if (module.ends_with(t)) return swap(t, {"w1", "w3"});
    }
    return {module};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const Checkpoint source = Checkpoint::open(argv[1]), lc = Checkpoint::open(argv[2]);
    auto weight = [&](const std::string& m, int64_t i) {
        return bf16_to_f32(source.tensor(m + ".weight").data<uint16_t>()[i]);
    };
    // Variants of the block-scale arithmetic: 0 = ModelOpt's (f32 throughout, as fourbit);
    // 1 = block max / 6 rounded to bfloat16 (the weight's dtype) before the global scale.
    long scale_diff[2] = {0, 0}, code_diff = 0, n_blocks = 0, n_codes = 0;
    int n_modules = 0, global_bf16 = 0;
    for (const std::string& name : lc.tensor_names()) {
        if (!name.ends_with(".weight_global_scale")) continue;
        const std::string m = name.substr(0, name.size() - std::string(".weight_global_scale").size());
        const float g = *lc.tensor(name).data<float>();
        float group_amax = 0;
        for (const std::string& member : fused_group(m)) {
            const Tensor w = source.tensor(member + ".weight");
            for (int64_t i = 0; i < w.numel(); ++i) group_amax = std::max(group_amax, std::fabs(weight(member, i)));
        }
        ++n_modules;
        global_bf16 += g == to_bf16(2688.0f / group_amax);
        const Tensor w = source.tensor(m + ".weight");
        const Tensor packed = lc.tensor(m + ".weight_packed"), scales = lc.tensor(m + ".weight_scale");
        const int64_t rows = w.dim(0), cols = w.dim(1);
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t b = 0; b < cols / 16; ++b) {
                float x[16], bmax = 0;
                for (int i = 0; i < 16; ++i) {
                    x[i] = weight(m, r * cols + b * 16 + i);
                    bmax = std::max(bmax, std::fabs(x[i]));
                }
                const uint8_t stored = scales.data<uint8_t>()[r * (cols / 16) + b];
                ++n_blocks;
                for (int v = 0; v < 2; ++v) {
                    const float local = v == 0 ? bmax / 6.0f : to_bf16(bmax / 6.0f);
                    uint8_t code = f32_to_f8_e4m3(std::min(local * g, 448.0f));
                    if (code == 0) code = f32_to_f8_e4m3(0.125f);  // compressed-tensors' guard
                    scale_diff[v] += code != stored;
                }
                // Codes from its stored block scale: x / (scale / global), in f32.
                const float step = f8_e4m3_to_f32(stored) / g;
                for (int i = 0; i < 16; ++i) {
                    const uint8_t mine = e2m1_encode(x[i] / step);
                    const uint8_t byte = packed.data<uint8_t>()[(r * cols + b * 16 + i) / 2];
                    const uint8_t theirs = i % 2 == 0 ? (byte & 0xf) : (byte >> 4);
                    ++n_codes;
                    if ((mine & 7) == 0 && (theirs & 7) == 0) continue;  // +0 and -0
                    code_diff += mine != theirs;
                }
            }
        }
    }
    std::printf("%d modules: global scale == bfloat16(2688 / fused-group amax) for %d\n", n_modules,
                global_bf16);
    std::printf("block scales: f32 arithmetic differs in %ld of %ld; block max / 6 in bfloat16 "
                "differs in %ld\n",
                scale_diff[0], n_blocks, scale_diff[1]);
    std::printf("codes from its block scales, x / (scale / global) in f32: differ in %ld of %ld\n",
                code_diff, n_codes);
}
