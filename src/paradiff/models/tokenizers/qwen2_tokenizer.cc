#include "paradiff/models/tokenizers/qwen2_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/tokenizer_folder.h"
#include "paradiff/models/tokenizers/tokenizer_json.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

namespace {

bool is_newline(char32_t c) {
  return c == U'\r' || c == U'\n';
}
bool is_other(char32_t c) {
  return !is_whitespace(c) && !is_letter(c) && !is_number(c);
}

// The contraction at text[i], matched case-insensitively ("'S", "'Re"): its length, or 0. The
// reference's case folding also lets "ſ" (U+017F, which folds to "s") stand for "s".
size_t contraction_at(std::u32string_view text, size_t i) {
  if (text[i] != U'\'' || i + 1 >= text.size()) return 0;
  auto fold = [](char32_t c) -> char32_t {
    if (c >= U'A' && c <= U'Z') return c + 32;
    return c == U'\u017F' ? U's' : c;
  };
  const char32_t a = fold(text[i + 1]);
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 >= text.size()) return 0;
  const char32_t b = fold(text[i + 2]);
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

// The length of Qwen2's pattern's match at text[i] (at least 1: every character is covered).
size_t match_at(std::u32string_view text, size_t i) {
  const size_t n = text.size();
  if (const size_t len = contraction_at(text, i)) return len;
  const char32_t c = text[i];
  // [^\r\n\p{L}\p{N}]?\p{L}+
  size_t j = i;
  if (!is_letter(c) && !is_newline(c) && !is_number(c) && i + 1 < n && is_letter(text[i + 1])) ++j;
  if (is_letter(text[j])) {
    while (j < n && is_letter(text[j])) ++j;
    return j - i;
  }
  // \p{N}
  if (is_number(c)) return 1;
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  j = c == U' ' ? i + 1 : i;
  if (j < n && is_other(text[j])) {
    while (j < n && is_other(text[j])) ++j;
    while (j < n && is_newline(text[j])) ++j;
    return j - i;
  }
  // Whitespace from here on: the run [i, end).
  size_t end = i;
  while (end < n && is_whitespace(text[end])) ++end;
  PARADIFF_ASSERT(end > i);
  // \s*[\r\n]+ : up to the run's last line break.
  for (size_t k = end; k > i; --k)
    if (is_newline(text[k - 1])) return k - i;
  // \s+(?!\S) : the run, less its last character when text follows.
  if (end == n) return end - i;
  if (end - 1 > i) return end - 1 - i;
  // \s+
  return end - i;
}

}  // namespace

std::vector<std::u32string_view> split_qwen2_pattern(std::u32string_view text) {
  std::vector<std::u32string_view> out;
  for (size_t i = 0; i < text.size();) {
    const size_t len = match_at(text, i);
    out.push_back(text.substr(i, len));
    i += len;
  }
  return out;
}

Qwen2Tokenizer Qwen2Tokenizer::from_pretrained(const std::string& folder) {
  const TokenizerFolder f = TokenizerFolder::read(folder);
  Qwen2Tokenizer t;
  // transformers' Qwen2Tokenizer: no suffix, no unknown token, whatever the file says.
  const BpeOptions options{"", std::nullopt};
  const bool from_json = f.tokenizer_json && f.tokenizer_json->has("model");
  if (from_json) {
    t.bpe_ = read_tokenizer_json(*f.tokenizer_json, "Qwen2Tokenizer", "BPE", options).bpe;
  } else {
    for (const char* name : {"vocab.json", "merges.txt"})
      PARADIFF_CHECK(std::filesystem::exists(f.file(name)), "Qwen2 tokenizer folder '", folder,
                     "' has no ", name, " (it needs tokenizer.json, or vocab.json and merges.txt)");
    t.bpe_ = std::make_shared<const BytePairEncoding>(
        BytePairEncoding::load(f.file("vocab.json"), f.file("merges.txt"), options));
  }
  // Qwen's configs say false; true would make added tokens plain text, which is not implemented.
  PARADIFF_CHECK(!(f.config && f.config->get_bool("split_special_tokens", false)),
                 f.config ? f.config->name() : folder,
                 ": 'split_special_tokens' true is not supported (Qwen's tokenizers set false)");
  // transformers' Qwen2Tokenizer: eos, unk and pad default to "<|endoftext|>", bos to none; a key
  // the config sets to null means none.
  auto special = [&](const char* key, const std::optional<std::string>& value,
                     bool endoftext_default) -> std::optional<std::string> {
    if (value) return value;
    if (f.config && f.config->root().contains(key)) return std::nullopt;
    if (endoftext_default) return "<|endoftext|>";
    return std::nullopt;
  };
  const auto bos = special("bos_token", f.bos_token, false);
  const auto eos = special("eos_token", f.eos_token, true);
  const auto unk = special("unk_token", f.unk_token, true);
  const auto pad = special("pad_token", f.pad_token, true);
  // The listed added tokens, then the special tokens: one in neither the vocabulary nor the list
  // becomes a new token after every other id, as transformers' add_tokens does.
  std::vector<AddedToken> added = f.added_tokens.value_or(std::vector<AddedToken>{});
  for (const auto& token : {bos, eos, unk, pad}) {
    if (!token) continue;
    const bool listed = std::any_of(added.begin(), added.end(),
                                    [&](const AddedToken& a) { return a.content == *token; });
    if (listed) continue;
    int64_t id = t.bpe_->token_to_id(*token);
    if (id < 0) {
      id = t.bpe_->vocab_size();
      for (const AddedToken& a : added) id = std::max(id, a.id + 1);
    }
    added.push_back(AddedToken{*token, id, true, false, false, false});
  }
  t.added_ = AddedVocabulary(std::move(added), [](std::u32string_view text) { return nfc(text); });
  if (pad) t.pad_id_ = t.added_.find(*pad);
  if (eos) t.eos_id_ = t.added_.find(*eos);
  t.pad_left_ = f.padding_left;
  t.add_prefix_space_ = f.add_prefix_space;
  return t;
}

std::vector<int64_t> Qwen2Tokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> out;
  for (const TextSegment& segment : added_.split(decode_utf8(text))) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
      continue;
    }
    for (std::u32string_view piece : split_qwen2_pattern(segment.text)) {
      std::string bytes = encode_utf8(piece);
      if (add_prefix_space_ && piece.front() != U' ') bytes.insert(0, 1, ' ');
      bpe_->encode_word(bytes, out);
    }
  }
  return out;
}

std::string Qwen2Tokenizer::decode(const std::vector<int64_t>& ids,
                                   bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (const AddedToken* added = added_.by_id(id)) {
      if (!(added->special && skip_special_tokens)) bytes += added->content;
      continue;
    }
    const std::string* token = bpe_->id_to_token(id);
    if (token == nullptr) continue;  // an id no token has decodes to nothing
    for (char32_t c : decode_utf8(*token)) {
      const int b = unicode_to_byte(c);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
      } else {
        append_utf8(c, bytes);
      }
    }
  }
  return encode_utf8(decode_utf8_lossy(bytes));
}

int64_t Qwen2Tokenizer::vocab_size() const {
  int64_t size = bpe_->vocab_size();
  for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
  return size;
}

std::string qwen_image_prompt_text(std::string_view prompt) {
  const std::string_view tmpl = QwenImagePromptTemplate::text;
  const size_t at = tmpl.find("{}");
  return str_cat(tmpl.substr(0, at), prompt, tmpl.substr(at + 2));
}

QwenImagePromptTokens tokenize_qwen_image_prompts(const Qwen2Tokenizer& tokenizer,
                                                  const std::vector<std::string>& prompts) {
  PARADIFF_CHECK(!prompts.empty(), "QwenImagePipeline: no prompts to tokenize");
  const int64_t max_length =
      QwenImagePromptTemplate::tokenizer_max_length + QwenImagePromptTemplate::drop;
  std::vector<std::vector<int64_t>> rows;
  size_t longest = 0;
  for (const std::string& prompt : prompts) {
    std::vector<int64_t> ids = tokenizer.tokenize(qwen_image_prompt_text(prompt));
    if (static_cast<int64_t>(ids.size()) > max_length) ids.resize(static_cast<size_t>(max_length));
    longest = std::max(longest, ids.size());
    rows.push_back(std::move(ids));
  }
  const bool needs_padding =
      std::any_of(rows.begin(), rows.end(), [&](const auto& r) { return r.size() != longest; });
  PARADIFF_CHECK(!needs_padding || tokenizer.pad_token_id() >= 0,
                 "QwenImagePipeline: prompts of different lengths need padding, and the "
                 "tokenizer has no pad_token");
  const auto b = static_cast<int64_t>(rows.size()), l = static_cast<int64_t>(longest);
  QwenImagePromptTokens out;
  out.input_ids = Tensor::empty({b, l}, DType::I64);
  out.attention_mask = Tensor::empty({b, l}, DType::I64);
  int64_t* ids = out.input_ids.data<int64_t>();
  int64_t* mask = out.attention_mask.data<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    const std::vector<int64_t>& row = rows[static_cast<size_t>(r)];
    const auto pad = static_cast<int64_t>(longest - row.size());
    const int64_t first = tokenizer.padding_left() ? pad : 0;  // where the tokens start
    for (int64_t k = 0; k < l; ++k) {
      const bool token = k >= first && k < first + static_cast<int64_t>(row.size());
      ids[r * l + k] = token ? row[static_cast<size_t>(k - first)] : tokenizer.pad_token_id();
      mask[r * l + k] = token ? 1 : 0;
    }
  }
  return out;
}

}  // namespace paradiff::models::tokenizers
