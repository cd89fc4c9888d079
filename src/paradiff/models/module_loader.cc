#include "paradiff/models/module_loader.h"

#include <cmath>
#include <functional>
#include <sstream>

#include "paradiff/kernels/weight_storage.h"

namespace paradiff::models {

namespace {
void check_compute(DType compute) {
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "compute dtype must be f32 or bf16, got ", dtype_name(compute));
}

// splitmix64: a fast, well-mixed hash, so each parameter's values depend only on the seed,
// its name and the element index.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

ModuleLoader::ModuleLoader(const WeightSource& source, DType compute)
    : source_(&source), compute_(compute) {
  check_compute(compute);
}

ModuleLoader::ModuleLoader(RandomInit init, DType compute) : random_(init), compute_(compute) {
  check_compute(compute);
}

Tensor ModuleLoader::random(const std::string& name, const Shape& shape, DType want) const {
  const bool is_norm = name.find("norm") != std::string::npos && shape.ndim() == 1;
  const float bound = shape.ndim() == 2 ? 1.0f / std::sqrt(static_cast<float>(shape[1])) : 0.02f;
  const float center = is_norm ? 1.0f : 0.0f;
  const uint64_t stream = mix(random_.seed ^ std::hash<std::string>{}(name));
  Tensor f = Tensor::empty(shape, DType::F32);
  float* p = f.data<float>();
  const int64_t n = f.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(mix(stream + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53;
    p[i] = center + bound * static_cast<float>(2.0 * u - 1.0);
  }
  return want == DType::F32 ? f : f.to(want);
}

std::string ModuleLoader::join(const std::string& prefix, const std::string& child) {
  return prefix.empty() ? child : prefix + "." + child;
}

Tensor ModuleLoader::take(const std::string& name, const Shape& shape, DType want) {
  bytes_bound_ += shape.numel() * static_cast<int64_t>(dtype_size(want));
  if (source_ == nullptr) {
    Tensor t = random(name, shape, want);
    if (record_ != nullptr) record_->insert_or_assign(name, t);
    return t;
  }
  PARADIFF_CHECK(source_->contains(name), source_->describe(), ": missing tensor '", name,
                 "' (expected shape ", shape.to_string(), ")");
  const std::vector<int64_t> stored = source_->shape(name);
  PARADIFF_CHECK(stored == shape.to_vector(), source_->describe(), ": tensor '", name,
                 "' has shape ", Shape(stored).to_string(), ", the config implies ",
                 shape.to_string());
  const std::string stored_dtype = source_->stored_dtype(name);
  PARADIFF_CHECK(want == DType::I64 || stored_dtype.empty() || stored_dtype == "F32" ||
                     stored_dtype == "BF16" || stored_dtype == "F16" || stored_dtype == "F8_E4M3",
                 source_->describe(), ": tensor '", name, "' is stored as ", stored_dtype,
                 "; a floating-point parameter must be F32, BF16, F16 or F8_E4M3");
  used_.insert(name);
  return source_->read(name, want);
}

kernels::Linear ModuleLoader::linear(const std::string& prefix, int64_t in, int64_t out,
                                     bool bias) {
  // Read the weight in its stored float dtype when that is the compute dtype (zero-copy), else
  // converted; Linear packs it once either way.
  const Tensor w = take(join(prefix, "weight"), Shape{out, in}, compute_);
  const Tensor b = bias ? take(join(prefix, "bias"), Shape{out}, DType::F32) : Tensor();
  return linear_from(prefix, w, b);
}

kernels::Linear ModuleLoader::linear_from(const std::string& prefix, const Tensor& weight,
                                          const Tensor& bias) {
  // Layerwise casting: the module keeps its parameters in the scope's storage dtype unless
  // diffusers' patterns skip it; the Linear rounds the weights itself, the bias is rounded here.
  const kernels::WeightStorage storage = kernels::weight_storage();
  // With bf16 compute only fp8 narrows (bf16 storage is what bf16 compute keeps anyway); the bias
  // is then rounded from its bf16 value, as diffusers casts a bf16 model's bias to fp8.
  const bool narrow =
      kernels::storage_narrows(storage, compute_) && !kernels::layerwise_casting_skips(prefix);
  kernels::WeightStorageScope scope(narrow ? storage : kernels::WeightStorage::AsComputed);
  const Tensor b = !narrow || !bias.defined() ? bias
                   : compute_ == DType::BF16
                       ? kernels::round_to_storage(bias.to(DType::BF16).to(DType::F32), storage)
                       : kernels::round_to_storage(bias, storage);
  try {
    return kernels::Linear(weight, b, compute_);
  } catch (...) {
    rethrow_with_context(source_ ? str_cat(source_->describe(), ": ", prefix) : prefix);
  }
}

Tensor ModuleLoader::parameter(const std::string& name, const Shape& shape) {
  return take(name, shape, DType::F32);
}

void ModuleLoader::finish() const {
  if (source_ == nullptr) return;
  std::ostringstream unused;
  int count = 0;
  for (const std::string& name : source_->names()) {
    if (used_.count(name)) continue;
    if (count < 5) unused << (count ? ", " : "") << "'" << name << "'";
    ++count;
  }
  PARADIFF_CHECK(count == 0, source_->describe(), ": ", count,
                 " unexpected tensor(s) that the model does not use: ", unused.str(),
                 count > 5 ? ", ..." : "", " (does the config match the weights?)");
}

}  // namespace paradiff::models
