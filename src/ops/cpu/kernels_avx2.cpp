// The avx2 kernel set (compile flags in src/ops/CMakeLists.txt).
#define KERNELS_NAMESPACE avx2
#define KERNELS_ISA "avx2"
#define PANEL_ROWS 2
#define PANEL_TOKENS 2
#include "ops/cpu/kernels_impl.inc"
