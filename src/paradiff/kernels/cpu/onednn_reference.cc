#include "paradiff/kernels/cpu/onednn_reference.h"

#include <cstring>
#include <memory>

#include "paradiff/kernels/cpu/onednn_context.h"

namespace paradiff::kernels::cpu {

std::function<void()> onednn_reference_matmul(int64_t m, int64_t k, int64_t n, DType dtype) {
  using dnnl::memory;
  auto& engine = onednn_engine();
  const auto dt = onednn_dtype(dtype);
  memory::desc src({m, k}, dt, memory::format_tag::ab);
  memory::desc wei({k, n}, dt, memory::format_tag::any);
  memory::desc dst({m, n}, memory::data_type::f32, memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), engine);
  struct State {
    memory a, b, c;
    dnnl::matmul mm;
  };
  auto state = std::make_shared<State>(State{memory(pd.src_desc(), engine),
                                             memory(pd.weights_desc(), engine),
                                             memory(pd.dst_desc(), engine), dnnl::matmul(pd)});
  std::memset(state->a.get_data_handle(), 0, pd.src_desc().get_size());
  std::memset(state->b.get_data_handle(), 0, pd.weights_desc().get_size());
  return [state] {
    auto& stream = onednn_stream();
    state->mm.execute(
        stream, {{DNNL_ARG_SRC, state->a}, {DNNL_ARG_WEIGHTS, state->b}, {DNNL_ARG_DST, state->c}});
    stream.wait();
  };
}

}  // namespace paradiff::kernels::cpu
