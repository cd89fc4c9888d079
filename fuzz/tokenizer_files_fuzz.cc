// libFuzzer target for the legacy tokenizer files: the input is split at its first NUL byte into
// vocab.json and merges.txt, written into a private folder, and read as CLIPTokenizer and
// Qwen2Tokenizer read a folder without tokenizer.json. Each must refuse it with paradiff::Error or
// give a tokenizer that then tokenizes and decodes a fixed text; anything else (another
// exception, ASan, UBSan) is a finding. Built and run by scripts/fuzz.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/clip_tokenizer.h"
#include "paradiff/models/tokenizers/qwen2_tokenizer.h"

namespace tk = paradiff::models::tokenizers;

namespace {

// A folder of this process's own, removed when the fuzzer exits.
struct Folder {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("paradiff-fuzz-tokenizer-files-" + std::to_string(getpid())))
                         .string();
  Folder() { std::filesystem::create_directories(path); }
  ~Folder() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

const std::string& folder() {
  static const Folder f;
  return f.path;
}

void write(const std::string& name, std::string_view bytes) {
  std::ofstream(folder() + "/" + name, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  write("vocab.json", input.substr(0, split));
  write("merges.txt", split == std::string_view::npos ? "" : input.substr(split + 1));
  const std::string text =
      "A photo of caf\xC3\xA9, \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x9A\x80 it's 1,000!";
  try {
    const auto clip = tk::CLIPTokenizer::from_pretrained(folder());
    (void)clip.encode(text, 77);
  } catch (const paradiff::Error&) {
  }
  try {
    const auto qwen = tk::Qwen2Tokenizer::from_pretrained(folder());
    (void)qwen.decode(qwen.tokenize(text));
  } catch (const paradiff::Error&) {
  }
  return 0;
}
