#include "paradiff/parallel/attention_backend.h"

#include "paradiff/kernels/attention.h"

namespace paradiff::parallel {

void LocalAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                            const ForwardContext&) {
  kernels::attention(q, k, v, out);
}

std::shared_ptr<AttentionBackend> make_local_attention() {
  return std::make_shared<LocalAttention>();
}

}  // namespace paradiff::parallel
