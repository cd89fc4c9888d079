#include "paradiff/dist/tensor_transfer.h"

#include <array>

namespace paradiff::dist {

namespace {
using Header = std::array<int64_t, 2 + Shape::kMaxDims>;  // ndim, dtype, dims
}

void send_tensor(Communicator& comm, const Tensor& t, int dest, int tag) {
  PARADIFF_CHECK(t.defined(), "send of an undefined tensor");
  Header header{};
  header[0] = t.ndim();
  header[1] = static_cast<int64_t>(t.dtype());
  for (int i = 0; i < t.ndim(); ++i) header[2 + i] = t.dim(i);
  comm.isend(header.data(), sizeof(header), dest, tag)->wait();
  if (t.nbytes() > 0) comm.isend(t.raw_data(), t.nbytes(), dest, tag)->wait();
}

Tensor receive_tensor(Communicator& comm, int source, int tag) {
  Header header{};
  comm.irecv(header.data(), sizeof(header), source, tag)->wait();
  PARADIFF_CHECK(header[0] >= 0 && header[0] <= Shape::kMaxDims, "received a tensor header with ",
                 header[0], " dims from rank ", source);
  std::vector<int64_t> dims(header.begin() + 2, header.begin() + 2 + header[0]);
  Tensor t = Tensor::empty(Shape(dims), static_cast<DType>(header[1]));
  if (t.nbytes() > 0) comm.irecv(t.raw_data(), t.nbytes(), source, tag)->wait();
  return t;
}

}  // namespace paradiff::dist
