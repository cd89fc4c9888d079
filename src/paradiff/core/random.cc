// Bit-exactness with torch needs every rounding where torch has one: no fused multiply-adds
// (g++ contracts a * b + c by default, even with -std=c++20).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#include "paradiff/core/random.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace paradiff {

namespace {

// 2π as torch writes it: 2.0f * c10::pi<double>, a double.
constexpr double kTwoPi = 2.0 * 3.14159265358979323846;

// A float uniform in [0, 1): 24 random bits, as at::uniform_real_distribution<float>.
inline float uniform24(std::mt19937& engine) {
  return static_cast<float>(engine() & 0xFFFFFFu) * 0x1.0p-24f;
}

// Box-Muller on 16 uniforms in place, pairs (j, j + 8), as torch's generic NormalFill16 (the
// DEFAULT CPU capability): libm's logf/cosf/sinf, theta = float(2π · u2) with the product in
// double.
inline void box_muller16_libm(float* d, float mean, float stddev) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];  // [0, 1) -> (0, 1] for the log
    const float u2 = d[j + 8];
    const float radius = std::sqrt(-2.0f * std::log(u1));
    const float theta = static_cast<float>(kTwoPi * static_cast<double>(u2));
    const float c = radius * std::cos(theta);
    const float s = radius * std::sin(theta);
    d[j] = std::fma(c, stddev, mean);
    d[j + 8] = std::fma(s, stddev, mean);
  }
}

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Cephes' single-precision polynomials (S. Moshier), as torch's AVX2 kernel evaluates them.
constexpr float kLogP[9] = {7.0376836292E-2f,  -1.1514610310E-1f, 1.1676998740E-1f,
                            -1.2420140846E-1f, 1.4249322787E-1f,  -1.6668057665E-1f,
                            2.0000714765E-1f,  -2.4999993993E-1f, 3.3333331174E-1f};
constexpr float kLogQ1 = -2.12194440e-4f, kLogQ2 = 0.693359375f;
constexpr float kSqrtHalf = 0.707106781186547524f;
constexpr float kFourOverPi = 1.27323954473516f;
constexpr float kDP1 = 0.78515625f, kDP2 = 2.4187564849853515625e-4f,
                kDP3 = 3.77489497744594108e-8f;
constexpr float kSinP[3] = {-1.9515295891E-4f, 8.3321608736E-3f, -1.6666654611E-1f};
constexpr float kCosP[3] = {2.443315711809948E-005f, -1.388731625493765E-003f,
                            4.166664568298827E-002f};

// log(v) for v in (0, 1]: the operation sequence of torch's AVX2 build (gcc fused the
// polynomial's multiply-adds and two of the final corrections into FMAs; every std::fma below
// stands for one of them, every other operation rounds on its own).
inline float cephes_logf(float v) {
  const float x0 = std::max(v, bits_to_float(0x00800000u));  // no denormals
  const uint32_t bits = float_to_bits(x0);
  float e = static_cast<float>(static_cast<int32_t>(bits >> 23) - 127) + 1.0f;
  const float m = bits_to_float((bits & 0x807fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const bool small = m < kSqrtHalf;
  e = e - (small ? 1.0f : 0.0f);
  float x = m + -1.0f;
  x = x + (small ? m : 0.0f);
  const float z = x * x;
  float y = std::fma(kLogP[0], x, kLogP[1]);
  for (int k = 2; k < 9; ++k) y = std::fma(y, x, kLogP[k]);
  y = x * y;
  y = std::fma(y, z, e * kLogQ1);
  y = std::fma(-z, 0.5f, y);
  return std::fma(e, kLogQ2, x + y);
}

// sin and cos of theta >= 0 (Cephes' reduction by pi/4 and two polynomials), in the same way.
inline void cephes_sincosf(float theta, float* sin_out, float* cos_out) {
  const float ax = std::fabs(theta);
  uint32_t sign_sin = float_to_bits(theta) & 0x80000000u;
  int32_t j = static_cast<int32_t>(ax * kFourOverPi);  // truncation, as cvttps2dq
  j = (j + 1) & ~1;
  const float y = static_cast<float>(j);
  sign_sin ^= static_cast<uint32_t>(j & 4) << 29;
  const uint32_t sign_cos = static_cast<uint32_t>(~(j - 2) & 4) << 29;
  const bool first_poly = (j & 2) == 0;
  float x = std::fma(y, -kDP1, ax);
  x = std::fma(y, -kDP2, x);
  x = std::fma(y, -kDP3, x);
  const float z = x * x;
  float c = std::fma(kCosP[0], z, kCosP[1]);
  c = std::fma(c, z, kCosP[2]);
  c = z * c;
  c = std::fma(z, c, -(z * 0.5f));
  c = c + 1.0f;
  float s = std::fma(kSinP[0], z, kSinP[1]);
  s = std::fma(s, z, kSinP[2]);
  s = z * s;
  s = std::fma(x, s, x);
  // Select by masks and subtraction, as the vector code does.
  const float s_part = first_poly ? s : 0.0f;
  const float c_part = first_poly ? 0.0f : c;
  const float sin_v = s_part + c_part;
  const float cos_v = (s - s_part) + (c - c_part);
  *sin_out = bits_to_float(float_to_bits(sin_v) ^ sign_sin);
  *cos_out = bits_to_float(float_to_bits(cos_v) ^ sign_cos);
}

// Box-Muller on 16 uniforms as torch's AVX2 NormalFill16 (used on every x86-64 CPU with AVX2:
// torch never dispatches normal_ to its AVX512 kernels): theta = 2π · u2 in float, Cephes'
// log and sincos.
inline void box_muller16_avx2(float* d, float mean, float stddev) {
  constexpr float kTwoPiF = static_cast<float>(kTwoPi);
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float theta = kTwoPiF * d[j + 8];
    const float radius = std::sqrt(cephes_logf(u1) * -2.0f);
    float s, c;
    cephes_sincosf(theta, &s, &c);
    d[j] = std::fma(radius * c, stddev, mean);
    d[j + 8] = std::fma(radius * s, stddev, mean);
  }
}

inline void box_muller16(TorchCpuKernel kernel, float* d, float mean, float stddev) {
  if (kernel == TorchCpuKernel::Avx2) {
    box_muller16_avx2(d, mean, stddev);
  } else {
    box_muller16_libm(d, mean, stddev);
  }
}

}  // namespace

Generator& Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  engine_.seed(static_cast<std::mt19937::result_type>(seed & 0xFFFFFFFFull));
  next_double_normal_.reset();
  return *this;
}

uint64_t Generator::random64() {
  const uint64_t hi = engine_();
  const uint64_t lo = engine_();
  return (hi << 32) | lo;
}

double Generator::normal_double() {
  if (next_double_normal_) {
    const double cached = *next_double_normal_;
    next_double_normal_.reset();
    return cached;
  }
  const double u1 = static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * 0x1.0p-53;
  const double u2 = static_cast<double>(random64() & ((uint64_t{1} << 53) - 1)) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log1p(-u2));
  const double theta = 2.0 * 3.14159265358979323846 * u1;
  next_double_normal_ = r * std::sin(theta);
  return r * std::cos(theta);
}

template <typename T>
void Generator::normal_scalar(T* data, int64_t count, double mean, double stddev) {
  for (int64_t i = 0; i < count; ++i) {
    const double product = normal_double() * stddev;
    const double value = product + mean;
    // torch's static_cast<scalar_t>(double): through float for the 16-bit types.
    data[i] = from_float<T>(static_cast<float>(value));
  }
}

template <typename T>
void Generator::normal_fill(T* data, int64_t count, float mean, float stddev) {
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t i = 0; i < count; ++i) data[i] = uniform24(engine_);
    for (int64_t i = 0; i + 16 <= count; i += 16) box_muller16(kernel_, data + i, mean, stddev);
    if (count % 16 != 0) {
      float* tail = data + count - 16;
      for (int j = 0; j < 16; ++j) tail[j] = uniform24(engine_);
      box_muller16(kernel_, tail, mean, stddev);
    }
  } else {
    float buf[16];
    auto chunk = [&](int64_t offset) {
      for (int j = 0; j < 16; ++j) buf[j] = uniform24(engine_);
      box_muller16(kernel_, buf, mean, stddev);
      for (int j = 0; j < 16; ++j) data[offset + j] = from_float<T>(buf[j]);
    };
    for (int64_t i = 0; i + 16 <= count; i += 16) chunk(i);
    if (count % 16 != 0) chunk(count - 16);
  }
}

void Generator::normal_(void* data, DType dtype, int64_t count, double mean, double stddev) {
  PARADIFF_CHECK(count >= 0, "normal_: negative element count ", count);
  PARADIFF_CHECK(stddev >= 0, "normal_: standard deviation must be >= 0, got ", stddev);
  PARADIFF_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
                 "randn supports f32, bf16 and f16, got ", dtype_name(dtype));
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, int64_t>) {
      T* p = static_cast<T*>(data);
      if (count >= 16) {
        normal_fill(p, count, static_cast<float>(mean), static_cast<float>(stddev));
      } else {
        normal_scalar(p, count, mean, stddev);
      }
    }
  });
}

Tensor Generator::randn(const Shape& shape, DType dtype) {
  PARADIFF_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16,
                 "randn supports f32, bf16 and f16, got ", dtype_name(dtype));
  Tensor out = Tensor::empty(shape, dtype);
  normal_(out.raw_data(), dtype, out.numel());
  return out;
}

Tensor randn_tensor(const Shape& shape, Generator& generator, DType dtype) {
  return generator.randn(shape, dtype);
}

Tensor randn_tensor(const Shape& shape, std::vector<Generator>& generators, DType dtype) {
  PARADIFF_CHECK(!generators.empty(), "randn_tensor: the list of generators is empty");
  if (generators.size() == 1) return generators[0].randn(shape, dtype);
  PARADIFF_CHECK(shape.ndim() >= 1 && shape[0] == static_cast<int64_t>(generators.size()),
                 "randn_tensor: ", generators.size(),
                 " generators were passed for a batch of shape ", shape.to_string(),
                 "; pass one generator per batch entry");
  Tensor out = Tensor::empty(shape, dtype);
  std::vector<int64_t> entry_dims = shape.to_vector();
  entry_dims[0] = 1;
  const Shape entry(entry_dims);
  for (size_t b = 0; b < generators.size(); ++b) {
    Tensor part = out.slice(static_cast<int64_t>(b), 1);
    generators[b].normal_(part.raw_data(), dtype, entry.numel());
  }
  return out;
}

}  // namespace paradiff
