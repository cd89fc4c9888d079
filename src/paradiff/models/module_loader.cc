#include "paradiff/models/module_loader.h"

#include <sstream>

namespace paradiff::models {

ModuleLoader::ModuleLoader(const WeightSource& source, DType compute)
    : source_(source), compute_(compute) {
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "compute dtype must be f32 or bf16, got ", dtype_name(compute));
}

std::string ModuleLoader::join(const std::string& prefix, const std::string& child) {
  return prefix.empty() ? child : prefix + "." + child;
}

Tensor ModuleLoader::take(const std::string& name, const Shape& shape, DType want) {
  PARADIFF_CHECK(source_.contains(name), source_.describe(), ": missing tensor '", name,
                 "' (expected shape ", shape.to_string(), ")");
  const std::vector<int64_t> stored = source_.shape(name);
  PARADIFF_CHECK(stored == shape.to_vector(), source_.describe(), ": tensor '", name,
                 "' has shape ", Shape(stored).to_string(), ", the config implies ",
                 shape.to_string());
  used_.insert(name);
  return source_.read(name, want);
}

kernels::Linear ModuleLoader::linear(const std::string& prefix, int64_t in, int64_t out,
                                     bool bias) {
  // Read the weight in its stored float dtype when that is the compute dtype (zero-copy), else
  // converted; Linear packs it once either way.
  const Tensor w = take(join(prefix, "weight"), Shape{out, in}, compute_);
  const Tensor b = bias ? take(join(prefix, "bias"), Shape{out}, DType::F32) : Tensor();
  try {
    return kernels::Linear(w, b, compute_);
  } catch (...) {
    rethrow_with_context(str_cat(source_.describe(), ": ", prefix));
  }
}

Tensor ModuleLoader::parameter(const std::string& name, const Shape& shape) {
  return take(name, shape, DType::F32);
}

void ModuleLoader::finish() const {
  std::ostringstream unused;
  int count = 0;
  for (const std::string& name : source_.names()) {
    if (used_.count(name)) continue;
    if (count < 5) unused << (count ? ", " : "") << "'" << name << "'";
    ++count;
  }
  PARADIFF_CHECK(count == 0, source_.describe(), ": ", count,
                 " unexpected tensor(s) that the model does not use: ", unused.str(),
                 count > 5 ? ", ..." : "", " (does the config match the weights?)");
}

}  // namespace paradiff::models
