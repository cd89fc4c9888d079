// libFuzzer target for the safetensors reader: any byte string is treated as a whole file. The
// reader must either reject it with paradiff::Error or accept it, and an accepted file must read
// back in every dtype without touching memory outside the input (ASan) or undefined behaviour
// (UBSan). Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "paradiff/core/error.h"
#include "paradiff/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* begin = reinterpret_cast<const std::byte*>(data);
  try {
    const paradiff::SafetensorsFile file =
        paradiff::SafetensorsFile::from_bytes(std::vector<std::byte>(begin, begin + size), "fuzz");
    for (const std::string& name : file.names()) {
      for (paradiff::DType want : {paradiff::DType::F32, paradiff::DType::BF16,
                                   paradiff::DType::F16, paradiff::DType::I64}) {
        try {
          const paradiff::Tensor t = file.read(name, want);
          // Touch every byte so that a view or copy past the data would be caught.
          const auto* p = static_cast<const unsigned char*>(t.raw_data());
          unsigned sum = 0;
          for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
          asm volatile("" : : "r"(sum));
        } catch (const paradiff::Error&) {
          // Unsupported conversions and shapes beyond Shape's dims are errors, not crashes.
        }
      }
    }
  } catch (const paradiff::Error&) {
    // Rejected: the expected outcome for most inputs.
  }
  return 0;
}
