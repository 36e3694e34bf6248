// Tensors on devices: CUDA allocations, copies both ways and between device tensors, errors that
// name the failed call. GPU cases skip where no CUDA device is present (CI); the build without
// the backend is checked to refuse device memory by name.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "tensor/cuda_memory.h"
#include "tensor/tensor.h"
#include "util/error.h"

namespace fourbit {
namespace {

#define SKIP_WITHOUT_GPU()                                                                \
    do {                                                                                  \
        if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine"; \
    } while (0)

Tensor random_bytes(Shape shape, uint32_t seed) {
    Tensor tensor = Tensor::zeros(DType::u8, std::move(shape));
    std::mt19937 rng(seed);
    for (int64_t i = 0; i < tensor.numel(); ++i) tensor.data<uint8_t>()[i] = static_cast<uint8_t>(rng());
    return tensor;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
    return a.size_bytes() == b.size_bytes() && std::memcmp(a.raw(), b.raw(), a.size_bytes()) == 0;
}

TEST(Device, Text) {
    EXPECT_EQ(device_text(Device::host()), "host");
    EXPECT_EQ(device_text(Device::cuda(1)), "cuda:1");
    EXPECT_NE(Device::cuda(0), Device::cuda(1));
    EXPECT_EQ(Tensor::zeros(DType::f32, {2}).device(), Device::host());
}

TEST(Device, HostToHostIsACopy) {
    Tensor source = random_bytes({3, 5}, 1);
    Tensor copy = source.to(Device::host());
    EXPECT_NE(copy.raw(), source.raw());
    EXPECT_TRUE(same_bytes(copy, source));
}

TEST(Device, WithoutTheBackendDeviceMemoryIsANamedError) {
    if (cuda_compiled()) GTEST_SKIP() << "this build has the CUDA backend";
    EXPECT_EQ(cuda_device_count(), 0);
    try {
        Tensor::zeros(DType::f32, {4}, Device::cuda(0));
        FAIL() << "allocated device memory without a backend";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("no CUDA backend"), std::string::npos)
            << error.what();
    }
}

TEST(Device, CudaRoundTripKeepsEveryByte) {
    SKIP_WITHOUT_GPU();
    for (int64_t rows : {1, 7, 1000}) {
        Tensor host = random_bytes({rows, 333}, static_cast<uint32_t>(rows));
        Tensor device = host.to(Device::cuda(0));
        EXPECT_EQ(device.device(), Device::cuda(0));
        EXPECT_EQ(device.shape(), host.shape());
        Tensor back = device.to(Device::host());
        EXPECT_TRUE(same_bytes(back, host)) << rows << " rows";
    }
}

TEST(Device, CudaZerosAreZero) {
    SKIP_WITHOUT_GPU();
    // Poison the memory first: a fresh allocation may already hold zeros by chance.
    Tensor poisoned = random_bytes({1 << 16}, 2).to(Device::cuda(0));
    poisoned = Tensor();
    Tensor zeros = Tensor::zeros(DType::u8, {1 << 16}, Device::cuda(0)).to(Device::host());
    for (int64_t i = 0; i < zeros.numel(); ++i) ASSERT_EQ(zeros.data<uint8_t>()[i], 0) << i;
}

TEST(Device, CopyFromBetweenDeviceTensorsAndRowViews) {
    SKIP_WITHOUT_GPU();
    Tensor host = random_bytes({6, 64}, 3);
    Tensor a = Tensor::zeros(DType::u8, {6, 64}, Device::cuda(0));
    a.copy_from(host);                       // host -> device
    Tensor b = Tensor::zeros(DType::u8, {6, 64}, Device::cuda(0));
    b.copy_from(a);                          // device -> device
    Tensor rows = b.rows(2, 3).to(Device::host());  // a view of device rows
    EXPECT_TRUE(same_bytes(rows, host.rows(2, 3).to(Device::host())));
    Tensor back = Tensor::zeros(DType::u8, {6, 64});
    back.copy_from(b);                       // device -> host
    EXPECT_TRUE(same_bytes(back, host));
}

TEST(Device, FailedCudaCallNamesTheCallAndWhere) {
    SKIP_WITHOUT_GPU();
    try {
        // 2^50 bytes: more than any card has.
        Tensor::zeros(DType::u8, {int64_t(1) << 50}, Device::cuda(0));
        FAIL() << "a petabyte allocation succeeded";
    } catch (const std::runtime_error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("cudaMalloc"), std::string::npos) << message;
        EXPECT_NE(message.find("cuda_memory.cpp:"), std::string::npos) << message;
        EXPECT_NE(message.find("cudaErrorMemoryAllocation"), std::string::npos) << message;
    }
    // The failure is not sticky: the device still works.
    Tensor after = random_bytes({16}, 4);
    EXPECT_TRUE(same_bytes(after.to(Device::cuda(0)).to(Device::host()), after));
}

}  // namespace
}  // namespace fourbit
