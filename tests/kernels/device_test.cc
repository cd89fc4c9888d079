// The device seam: a kernel given a tensor on a device this build has no backend for refuses it,
// naming the op and the device, before touching its memory.
#include <gtest/gtest.h>

#include <string>

#include "paradiff/kernels/activations.h"
#include "paradiff/kernels/attention.h"
#include "paradiff/kernels/conv2d.h"
#include "paradiff/kernels/layer_norm.h"
#include "paradiff/kernels/linear.h"
#include "paradiff/kernels/pointwise.h"

namespace paradiff::kernels {
namespace {

template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

// Host memory labelled as CUDA memory: enough to reach the dispatch, which must not read it.
Tensor on_cuda(const Tensor& host) {
  return Tensor::from_external(const_cast<void*>(host.raw_data()), host.shape(), host.dtype(),
                               std::shared_ptr<const void>(), Device::cuda(0));
}

TEST(DeviceSeam, KernelsRefuseATensorOnADeviceWithoutBackend) {
  const Tensor host = Tensor::zeros({2, 3, 8}, DType::F32);
  Tensor cuda = on_cuda(host);
  EXPECT_EQ(cuda.device(), Device::cuda(0));
  Tensor cuda_out = on_cuda(Tensor::zeros({2, 3, 8}, DType::F32));
  expect_error([&] { gelu_tanh(cuda, cuda_out); }, {"gelu_tanh", "no cuda:0 implementation"});
  expect_error([&] { fill(cuda_out, 1.0f); }, {"fill", "cuda:0"});
  expect_error([&] { scale_shift_clamp(cuda, 0.5f, 0.5f, 0.0f, 1.0f, cuda_out); },
               {"scale_shift_clamp", "cuda:0"});
  expect_error([&] { layer_norm(cuda, 1e-6f, cuda_out); }, {"layer_norm", "cuda:0"});
  const Tensor q = on_cuda(Tensor::zeros({1, 4, 2, 8}, DType::F32));
  Tensor out = on_cuda(Tensor::zeros({1, 4, 2, 8}, DType::F32));
  expect_error([&] { attention(q, q, q, out); }, {"attention", "cuda:0"});
}

TEST(DeviceSeam, KernelsRefuseTensorsOnDifferentDevices) {
  const Tensor host = Tensor::zeros({2, 8}, DType::F32);
  Tensor out = Tensor::zeros({2, 8}, DType::F32);
  expect_error([&] { silu(on_cuda(host), out); },
               {"silu: tensors on different devices: cuda:0 and cpu (f32[2, 8])"});
  expect_error([&] { add(host, on_cuda(host), out); }, {"add", "different devices"});
}

TEST(DeviceSeam, LayersRefuseWeightsOnADeviceWithoutBackend) {
  const Tensor w = on_cuda(Tensor::zeros({4, 8}, DType::F32));
  expect_error([&] { Linear(w, Tensor(), DType::F32); }, {"linear", "no cuda:0 implementation"});
  const Tensor cw = on_cuda(Tensor::zeros({4, 3, 3, 3}, DType::F32));
  expect_error([&] { Conv2d(cw, Tensor(), 1, Padding2d::same(1)); }, {"conv2d", "cuda:0"});
  // A CPU layer refuses an input on another device.
  const Linear cpu(Tensor::zeros({4, 8}, DType::F32), Tensor(), DType::F32);
  EXPECT_EQ(cpu.device(), Device::cpu());
  Tensor y = Tensor::zeros({2, 4}, DType::F32);
  expect_error(
      [&] {
        cpu.forward(on_cuda(Tensor::zeros({2, 8}, DType::F32)), y);
      },
      {"linear", "cuda:0"});
}

}  // namespace
}  // namespace paradiff::kernels
