// libFuzzer target for PNG reading: any byte string is decoded as a PNG file. Decoding must
// either refuse it with paradiff::Error or give a (3, H, W) image within the size limit; anything
// else (another exception, a crash, ASan, UBSan, memory beyond -rss_limit_mb) is a finding.
// Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "paradiff/core/error.h"
#include "paradiff/io/png.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const paradiff::Tensor image = paradiff::decode_png(bytes, "fuzz.png");
    if (image.ndim() != 3 || image.dim(0) != 3 || image.dim(1) > paradiff::kMaxPngSide ||
        image.dim(2) > paradiff::kMaxPngSide)
      std::abort();
  } catch (const paradiff::Error&) {
  }
  return 0;
}
