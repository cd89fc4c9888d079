// Devices on tensors: every tensor is on the CPU today, allocation for a device without a backend
// is refused by name, and the host-only tensor operations refuse other devices.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "paradiff/core/allocator.h"
#include "paradiff/core/tensor.h"

namespace paradiff {
namespace {

void expect_error_with(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Device, NamesAndDefaults) {
  EXPECT_EQ(device_name(Device::cpu()), "cpu");
  EXPECT_EQ(device_name(Device::cuda(1)), "cuda:1");
  EXPECT_EQ(Tensor::empty({2}, DType::F32).device(), Device::cpu());
  EXPECT_EQ(Tensor().device(), Device::cpu());
  EXPECT_EQ(Tensor::zeros({2, 3}, DType::F32).slice(0, 1).device(), Device::cpu());
  EXPECT_EQ(Tensor::zeros({2, 3}, DType::F32).describe(), "f32[2, 3]");
}

TEST(Device, AllocationGoesThroughTheDevicesAccounting) {
  const int64_t before = current_bytes();
  {
    const Tensor t = Tensor::empty({1024}, DType::F32, Device::cpu());
    EXPECT_EQ(current_bytes(), before + 4096);
    EXPECT_EQ(allocator(Device::cpu()).stats().current_bytes, current_bytes());
    EXPECT_GE(peak_bytes(), before + 4096);
  }
  EXPECT_EQ(current_bytes(), before);
  expect_error_with([] { Tensor::empty({4}, DType::F32, Device::cuda(0)); },
                    "no cuda:0 implementation");
}

TEST(Device, HostOperationsRefuseOtherDevices) {
  Tensor host = Tensor::zeros({2, 3}, DType::F32);
  const Tensor cuda = Tensor::from_external(host.raw_data(), host.shape(), host.dtype(),
                                            std::shared_ptr<const void>(), Device::cuda(0));
  EXPECT_EQ(cuda.describe(), "f32[2, 3] on cuda:0");
  EXPECT_EQ(cuda.slice(1, 1).device(), Device::cuda(0));  // views keep the device
  expect_error_with([&] { (void)cuda.to(DType::BF16); },
                    "to: f32[2, 3] on cuda:0 is not on the cpu");
  expect_error_with([&] { host.copy_from(cuda); }, "is not on the cpu");
  expect_error_with([&] { (void)concat({host, cuda}, 0); }, "concat");
}

TEST(Tensor, AsSharesStorageWhenTheDtypeIsAlreadyRight) {
  const Tensor t = Tensor::zeros({3}, DType::F32);
  EXPECT_EQ(t.as(DType::F32).raw_data(), t.raw_data());
  const Tensor b = t.as(DType::BF16);
  EXPECT_NE(b.raw_data(), t.raw_data());
  EXPECT_EQ(b.dtype(), DType::BF16);
}

}  // namespace
}  // namespace paradiff
