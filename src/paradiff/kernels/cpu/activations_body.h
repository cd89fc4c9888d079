// Level body of activations (isa_dispatch.h): chunks of the flattened tensor in fp32, the vector
// part in vec_math.h's vocabulary (zmm at avx512, ymm at avx2), scalar tails.
#include "paradiff/kernels/cpu/row_io.h"
#include "paradiff/kernels/cpu/vec_math.h"

constexpr int64_t kActivationChunk = 4096;

// Applies a vector function and its scalar twin over chunks of the flattened tensor.
template <typename Vec, typename Scalar>
void activation_chunks(const void* x, DType x_dtype, int64_t n, void* out, DType out_dtype,
                       Vec vec_fn, Scalar scalar_fn) {
  const int64_t chunks = (n + kActivationChunk - 1) / kActivationChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    alignas(64) float buf[kActivationChunk];
    const int64_t begin = c * kActivationChunk;
    const int64_t len = n - begin < kActivationChunk ? n - begin : kActivationChunk;
    load_row(x, x_dtype, begin, len, buf);
    int64_t i = 0;
#if defined(PARADIFF_VEC_LANES)
    for (; i + kLanes <= len; i += kLanes) vstore(buf + i, vec_fn(vload(buf + i)));
#endif
    for (; i < len; ++i) buf[i] = scalar_fn(buf[i]);
    store_row(buf, out, out_dtype, begin, len);
  }
  (void)vec_fn;
}

void gelu_tanh_chunks(const void* x, DType x_dtype, int64_t n, void* out, DType out_dtype) {
  activation_chunks(
      x, x_dtype, n, out, out_dtype,
#if defined(PARADIFF_VEC_LANES)
      [](VecF v) {
        const VecF inner =
            vmul(vset(0.7978845608028654f), vfma(vmul(vset(0.044715f), v), vmul(v, v), v));
        return vmul(vmul(vset(0.5f), v), vadd(vset(1.0f), vtanh(inner)));
      },
#else
      0,
#endif
      gelu_tanh_scalar);
}

void silu_chunks(const void* x, DType x_dtype, int64_t n, void* out, DType out_dtype) {
  activation_chunks(
      x, x_dtype, n, out, out_dtype,
#if defined(PARADIFF_VEC_LANES)
      [](VecF v) { return vsilu(v); },
#else
      0,
#endif
      silu_scalar);
}
