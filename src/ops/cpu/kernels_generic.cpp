// The generic kernel set (compile flags in src/ops/CMakeLists.txt).
#define KERNELS_NAMESPACE generic
#define KERNELS_ISA "generic"
#define PANEL_ROWS 2
#define PANEL_TOKENS 2
#include "ops/cpu/kernels_impl.inc"
