// libFuzzer target for SentencePiece's precompiled charsmap (tokenizer.json's Precompiled
// normalizer, spiece.model's normalizer_spec): the input's first byte splits it into a charsmap
// blob and a UTF-8 text. Parsing must refuse the blob with paradiff::Error or give a normalizer
// that handles the text (any trie, any offsets) without reading outside the blob (ASan) or
// undefined behaviour (UBSan). Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/precompiled_charsmap.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace tk = paradiff::models::tokenizers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = std::min<size_t>(all.size(), size_t{data[0]} * 16);
  try {
    const auto charsmap = tk::PrecompiledCharsmap::parse(all.substr(cut), "fuzz");
    const std::u32string text = tk::decode_utf8_lossy(all.substr(0, cut));
    const std::u32string out = charsmap.normalize(text);
    (void)tk::encode_utf8(out);
  } catch (const paradiff::Error&) {
  }
  return 0;
}
