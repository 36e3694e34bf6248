// linear on CUDA: dense weights through cuBLAS (bf16 weights with x rounded to bf16, f32 weights
// in plain f32), tiled NVFP4 through the weight-only GEMV family (ops/cuda/nvfp4_gemv.cuh).
#include <cmath>

#include "ops/cuda/cublas.h"
#include "ops/cuda/nvfp4_gemv.cuh"
#include "ops/cuda/stream.h"
#include "ops/linear.h"
#include "ops/nvfp4_tiles.h"
#include "tensor/cuda_check.h"

namespace fourbit::cuda {

namespace {

__global__ void f32_to_bf16_kernel(const float* x, __nv_bfloat16* out, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = __float2bfloat16_rn(x[i]);
}

// y [m, n] = x [m, k] W^T with W [n, k] row-major. cuBLAS is column-major: there W is a k x n
// matrix (so op T), x a k x m one and y an n x m one, all with their row lengths as leading
// dimensions.
void linear_dense(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    const int m = static_cast<int>(x.dim(0)), k = static_cast<int>(x.dim(1));
    const int n = static_cast<int>(weight.rows());
    const float alpha = 1.0f, beta = 0.0f;
    cublasHandle_t handle = cublas_handle();
    if (weight.weight.dtype() == DType::f32) {
        FOURBIT_CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                         weight.weight.data<float>(), k, x.data<float>(), k, &beta,
                                         y.data<float>(), n));
        return;
    }
    const int64_t count = x.numel();
    Scratch x_bf16(static_cast<size_t>(count) * 2);
    f32_to_bf16_kernel<<<static_cast<unsigned>((count + 255) / 256), 256, 0, current_stream()>>>(
        x.data<float>(), x_bf16.as<__nv_bfloat16>(), count);
    FOURBIT_CUDA_CHECK_LAUNCH();
    FOURBIT_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha,
                                      weight.weight.data<uint16_t>(), CUDA_R_16BF, k,
                                      x_bf16.as<uint16_t>(), CUDA_R_16BF, k, &beta,
                                      y.data<float>(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void linear(const Tensor& x, const LinearWeight& weight, Tensor& y) {
    if (x.dim(0) == 0) return;
    DeviceScope scope(x.device().index);
    if (weight.format() == WeightFormat::dense) return linear_dense(x, weight, y);
    const nvfp4::TilesView tiles{weight.weight.data<uint4>(), weight.block_scale.data<uint2>(),
                                 static_cast<int>(weight.rows()), static_cast<int>(weight.cols()),
                                 std::ldexp(weight.global_scale, kNvFp4TileExponent)};
    FOURBIT_CUDA_CHECK(nvfp4::launch_linear(tiles, x.data<float>(), static_cast<int>(x.dim(0)),
                                            y.data<float>(), current_stream()));
    FOURBIT_CUDA_CHECK_LAUNCH();
}

}  // namespace fourbit::cuda
