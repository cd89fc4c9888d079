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

void broadcast_string(Communicator& comm, std::string& text, int root) {
  if (comm.size() == 1) return;
  int64_t length = static_cast<int64_t>(text.size());
  comm.broadcast(&length, sizeof(length), root);
  if (comm.rank() != root) text.assign(static_cast<size_t>(length), '\0');
  if (length > 0) comm.broadcast(text.data(), text.size(), root);
}

void broadcast_tensors(Communicator& comm, std::map<std::string, Tensor>& tensors, int root) {
  if (comm.size() == 1) return;
  // Names joined by '\n' (a tensor name holds no newline: checked on root).
  std::string names;
  if (comm.rank() == root) {
    for (const auto& [name, t] : tensors) {
      PARADIFF_CHECK(name.find('\n') == std::string::npos, "tensor name '", name,
                     "' holds a newline");
      names += name + "\n";
    }
  }
  broadcast_string(comm, names, root);
  if (comm.rank() != root) {
    tensors.clear();
    for (size_t begin = 0, end; (end = names.find('\n', begin)) != std::string::npos;
         begin = end + 1)
      tensors[names.substr(begin, end - begin)] = Tensor();
  }
  for (auto& [name, t] : tensors) broadcast_tensor(comm, t, root);
}

}  // namespace paradiff::dist
