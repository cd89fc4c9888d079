// libFuzzer target for the tokenizers' text path: any byte string is a prompt for the fixture
// tokenizers (tests/fixtures/tokenizers: CLIP and T5 from tokenizer.json, Qwen2; T5 from
// spiece.model in tests/fixtures/text_encoders). Invalid UTF-8 must be refused with
// paradiff::Error; valid text must tokenize, pad, truncate and decode without memory errors
// (ASan) or undefined behaviour (UBSan), and Qwen2's byte-level BPE must decode back to the NFC
// form of the text (a lossless round trip). Built and run by scripts/fuzz.sh, which passes the
// repository root as PARADIFF_SOURCE_DIR.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "paradiff/models/tokenizers/qwen2_tokenizer.h"
#include "paradiff/models/tokenizers/t5_tokenizer.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace tk = paradiff::models::tokenizers;

namespace {

std::string fixture(const std::string& name) {
  return std::string(PARADIFF_SOURCE_DIR) + "/tests/fixtures/" + name;
}

struct Tokenizers {
  tk::CLIPTokenizer clip = tk::CLIPTokenizer::from_pretrained(fixture("tokenizers/clip_json"));
  tk::T5Tokenizer t5 = tk::T5Tokenizer::from_pretrained(fixture("tokenizers/t5_json"));
  tk::T5Tokenizer t5_spiece =
      tk::T5Tokenizer::from_pretrained(fixture("text_encoders/t5_tiny/tokenizer_2"));
  tk::Qwen2Tokenizer qwen = tk::Qwen2Tokenizer::from_pretrained(fixture("tokenizers/qwen2"));
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Tokenizers tokenizers;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)tokenizers.clip.decode(tokenizers.clip.encode(text).input_ids);
    (void)tokenizers.t5.decode(tokenizers.t5.encode(text, 16).input_ids);
    (void)tokenizers.t5_spiece.encode(text, 16);
    const auto ids = tokenizers.qwen.tokenize(text);
    if (tokenizers.qwen.decode(ids) != tk::encode_utf8(tk::nfc(tk::decode_utf8(text)))) abort();
    (void)tk::tokenize_qwen_image_prompts(tokenizers.qwen, {std::string(text), "a"});
  } catch (const paradiff::Error&) {
    // Invalid UTF-8 (or a text no pad token can even out): refused, as it must be.
  }
  return 0;
}
