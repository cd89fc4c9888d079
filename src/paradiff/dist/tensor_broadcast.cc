#include "paradiff/dist/tensor_broadcast.h"

#include <array>

namespace paradiff::dist {

void broadcast_tensor(Communicator& comm, Tensor& t, int root) {
  if (comm.size() == 1) return;
  // Header: ndim, dtype, dims.
  std::array<int64_t, 2 + Shape::kMaxDims> header{};
  if (comm.rank() == root) {
    PARADIFF_CHECK(t.defined(), "broadcast of an undefined tensor");
    header[0] = t.ndim();
    header[1] = static_cast<int64_t>(t.dtype());
    for (int i = 0; i < t.ndim(); ++i) header[2 + i] = t.dim(i);
  }
  comm.broadcast(header.data(), sizeof(header), root);
  if (comm.rank() != root) {
    std::vector<int64_t> dims(header.begin() + 2, header.begin() + 2 + header[0]);
    t = Tensor::empty(Shape(dims), static_cast<DType>(header[1]));
  }
  comm.broadcast(t.raw_data(), t.nbytes(), root);
}

}  // namespace paradiff::dist
