// The avx512 kernel set (compile flags in src/ops/CMakeLists.txt).
#define KERNELS_NAMESPACE avx512
#define KERNELS_ISA "avx512"
#define PANEL_ROWS 4
#define PANEL_TOKENS 4
#include "ops/cpu/kernels_impl.inc"
