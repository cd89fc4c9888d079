// libFuzzer target for tokenizer.json: any byte string is treated as the whole file and read as
// CLIPTokenizer, Qwen2Tokenizer and T5Tokenizer read it. Reading must either refuse it with
// paradiff::Error or give a model that then tokenizes a fixed text without touching memory
// outside what it owns (ASan) or undefined behaviour (UBSan). Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "paradiff/core/error.h"
#include "paradiff/io/json_config.h"
#include "paradiff/models/tokenizers/precompiled_charsmap.h"
#include "paradiff/models/tokenizers/tokenizer_json.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace tk = paradiff::models::tokenizers;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::u32string sample = U"A photo of 東京, café\u0301 ½\u0308 ＡＢ 🚀 it's 1,000!";
  try {
    const paradiff::JsonConfig file = paradiff::JsonConfig::parse(text, "fuzz/tokenizer.json");
    try {
      const tk::BpeOptions options[] = {{"</w>", "<|endoftext|>"}, {"", std::nullopt}};
      for (const tk::BpeOptions& o : options) {
        const auto model = tk::read_tokenizer_json(file, "CLIPTokenizer", "BPE", o);
        std::vector<int64_t> ids;
        for (std::string_view word : {"a", "photo", "caf\xC3\xA9", "\xF0\x9F\x9A\x80", "xyz!"})
          model.bpe->encode_word(word, ids);
        for (int64_t id : ids) (void)model.bpe->id_to_token(id);
      }
    } catch (const paradiff::Error&) {
    }
    try {
      const auto model = tk::read_tokenizer_json(file, "T5Tokenizer", "Unigram");
      double min_score = std::numeric_limits<double>::infinity();
      for (const auto& p : model.unigram_pieces) min_score = std::min(min_score, p.score);
      const tk::Unigram unigram(model.unigram_pieces, 2, min_score);
      std::u32string normalized = sample;
      if (model.precompiled_charsmap)
        normalized = tk::PrecompiledCharsmap::parse(*model.precompiled_charsmap, "fuzz")
                         .normalize(sample);
      std::vector<int64_t> ids;
      unigram.encode(tk::encode_utf8(normalized), ids);
    } catch (const paradiff::Error&) {
    }
  } catch (const paradiff::Error&) {
    // Not JSON: the expected outcome for most inputs.
  }
  return 0;
}
