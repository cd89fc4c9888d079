// What a transformers tokenizer folder says besides its model files: the special tokens and
// model_max_length of tokenizer_config.json (or special_tokens_map.json), and the added tokens
// that transformers' tokenizers backend matches in the text (tokenizer.json's "added_tokens", or
// tokenizer_config.json's "added_tokens_decoder").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/io/json_config.h"
#include "paradiff/models/tokenizers/added_tokens.h"

namespace paradiff::models::tokenizers {

struct TokenizerFolder {
  std::string path;
  // "bos_token", "eos_token", "unk_token", "pad_token" -> content, from tokenizer_config.json,
  // else special_tokens_map.json. A value may be a string or an object with "content".
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  // Absent when the config has none, or says "no limit" (transformers writes 1e30).
  std::optional<int64_t> model_max_length;
  bool padding_left = false;  // padding_side "left"
  std::optional<int64_t> extra_ids;
  bool add_prefix_space = false;  // Qwen2's ByteLevel option; false when absent or null
  // tokenizer_config.json, parsed, when the folder has one (for keys only one tokenizer reads).
  std::shared_ptr<const JsonConfig> config;
  // tokenizer.json, parsed, when the folder has one (the tokenizers read its "model" from it).
  std::shared_ptr<const JsonConfig> tokenizer_json;
  // tokenizer.json's "added_tokens" when the folder has tokenizer.json (transformers prefers it),
  // else tokenizer_config.json's "added_tokens_decoder"; absent when neither lists any.
  std::optional<std::vector<AddedToken>> added_tokens;

  // Reads the optional JSON files of `path`, which must be a directory. Every file that exists
  // must parse and have the expected types; errors name the file and the key.
  static TokenizerFolder read(const std::string& path);
  // "<path>/<name>"
  std::string file(const std::string& name) const;
};

// The whole content of a (small) text file; errors name the path and the system's reason.
std::string read_text_file(const std::string& path);

}  // namespace paradiff::models::tokenizers
