#include "paradiff/pipeline/component_consistency.h"

#include "paradiff/core/error.h"

namespace paradiff::pipeline {

void check_components_match(const ConfigValue& a, const ConfigValue& b, const std::string& why) {
  PARADIFF_CHECK(a.value == b.value, a.file, ": ", a.key, " = ", a.value, " does not match ",
                 b.file, ": ", b.key, " = ", b.value, " (", why, ")");
}

}  // namespace paradiff::pipeline
