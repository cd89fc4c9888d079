#include "paradiff/models/tokenizers/clip_tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/models/tokenizers/tokenizer_folder.h"
#include "paradiff/models/tokenizers/tokenizer_json.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

namespace {

constexpr std::u32string_view kStartOfText = U"<|startoftext|>";
constexpr std::u32string_view kEndOfText = U"<|endoftext|>";

// The contraction at text[i] ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"): its length, or 0.
size_t contraction_at(std::u32string_view text, size_t i) {
  if (text[i] != U'\'' || i + 1 >= text.size()) return 0;
  const char32_t a = text[i + 1];
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 >= text.size()) return 0;
  const char32_t b = text[i + 2];
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

bool is_other(char32_t c) {
  return !is_whitespace(c) && !is_letter(c) && !is_number(c);
}

}  // namespace

CLIPTokenizer CLIPTokenizer::from_pretrained(const std::string& folder) {
  const TokenizerFolder f = TokenizerFolder::read(folder);
  CLIPTokenizer t;
  const std::string bos = f.bos_token.value_or("<|startoftext|>");
  const std::string eos = f.eos_token.value_or("<|endoftext|>");
  const std::string unk = f.unk_token.value_or("<|endoftext|>");
  const std::string pad = f.pad_token.value_or("<|endoftext|>");
  // transformers' CLIPTokenizer passes its own suffix and unknown token, whatever the file says.
  const BpeOptions options{"</w>", unk};
  const bool from_json = f.tokenizer_json && f.tokenizer_json->has("model");
  if (from_json) {
    t.bpe_ = read_tokenizer_json(*f.tokenizer_json, "CLIPTokenizer", "BPE", options).bpe;
  } else {
    for (const char* name : {"vocab.json", "merges.txt"})
      PARADIFF_CHECK(std::filesystem::exists(f.file(name)), "CLIP tokenizer folder '", folder,
                     "' has no ", name, " (it needs tokenizer.json, or vocab.json and merges.txt)");
    t.bpe_ = std::make_shared<const BytePairEncoding>(
        BytePairEncoding::load(f.file("vocab.json"), f.file("merges.txt"), options));
  }

  // The listed added tokens, then the special tokens transformers adds when they are missing.
  std::vector<AddedToken> added = f.added_tokens.value_or(std::vector<AddedToken>{});
  for (const std::string* special : {&bos, &eos, &unk, &pad}) {
    const bool listed = std::any_of(added.begin(), added.end(),
                                    [&](const AddedToken& a) { return a.content == *special; });
    if (listed) continue;
    const int64_t id = t.bpe_->token_to_id(*special);
    PARADIFF_CHECK(id >= 0, folder, ": special token '", *special, "' is neither in ",
                   from_json ? "tokenizer.json's model.vocab" : "vocab.json",
                   " nor among the added tokens");
    added.push_back(AddedToken{*special, id, true, false, false, false});
  }
  t.added_ = AddedVocabulary(std::move(added), normalize);
  t.bos_id_ = t.added_.find(bos);
  t.eos_id_ = t.added_.find(eos);
  t.pad_id_ = t.added_.find(pad);
  t.model_max_length_ = f.model_max_length.value_or(77);
  t.pad_left_ = f.padding_left;
  return t;
}

std::u32string CLIPTokenizer::normalize(std::u32string_view text) {
  const std::u32string composed = nfc(text);
  std::u32string collapsed;
  collapsed.reserve(composed.size());
  for (size_t i = 0; i < composed.size();) {
    if (!is_whitespace(composed[i])) {
      collapsed.push_back(composed[i++]);
      continue;
    }
    collapsed.push_back(U' ');
    while (i < composed.size() && is_whitespace(composed[i])) ++i;
  }
  return lowercase(collapsed);
}

void CLIPTokenizer::tokenize_normalized(std::u32string_view text, std::vector<int64_t>& out) const {
  auto emit = [&](std::u32string_view word) { bpe_->encode_word(encode_utf8(word), out); };
  size_t i = 0;
  while (i < text.size()) {
    const std::u32string_view rest = text.substr(i);
    if (rest.starts_with(kStartOfText) || rest.starts_with(kEndOfText)) {
      // Matched as one word by CLIP's pattern, then cut by the byte-level stage's GPT-2 pattern
      // into "<|", the name and "|>".
      const size_t len = rest.starts_with(kStartOfText) ? kStartOfText.size() : kEndOfText.size();
      emit(rest.substr(0, 2));
      emit(rest.substr(2, len - 4));
      emit(rest.substr(len - 2, 2));
      i += len;
      continue;
    }
    size_t len = contraction_at(text, i);
    if (len == 0) {
      const char32_t c = text[i];
      if (is_whitespace(c)) {
        ++i;
        continue;
      }
      len = 1;
      if (is_letter(c)) {
        while (i + len < text.size() && is_letter(text[i + len])) ++len;
      } else if (!is_number(c)) {
        while (i + len < text.size() && is_other(text[i + len])) ++len;
      }
    }
    emit(text.substr(i, len));
    i += len;
  }
}

std::vector<int64_t> CLIPTokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> out;
  for (const TextSegment& segment : added_.split(decode_utf8(text))) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
    } else {
      tokenize_normalized(segment.text, out);
    }
  }
  return out;
}

Encoding CLIPTokenizer::encode(std::string_view text, int64_t max_length) const {
  EncodingLayout layout;
  layout.prefix = {bos_id_};
  layout.suffix = {eos_id_};
  layout.pad_id = pad_id_;
  layout.pad_left = pad_left_;
  return make_encoding(tokenize(text), layout, max_length > 0 ? max_length : model_max_length_);
}

Tensor CLIPTokenizer::encode_batch(const std::vector<std::string>& prompts,
                                   int64_t max_length) const {
  if (max_length <= 0) max_length = model_max_length_;
  std::vector<Encoding> encodings;
  encodings.reserve(prompts.size());
  for (const std::string& prompt : prompts) {
    encodings.push_back(encode(prompt, max_length));
    if (!encodings.back().truncated_ids.empty())
      log_warning(
          "The following part of your input was truncated because CLIP can only handle "
          "sequences up to ",
          max_length, " tokens: ['", decode(encodings.back().truncated_ids), "']");
  }
  return stack_input_ids(encodings);
}

std::string CLIPTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int64_t id : ids) {
    std::string_view token;
    if (const AddedToken* added = added_.by_id(id)) {
      if (added->special && skip_special_tokens) continue;
      token = added->content;
    } else if (const std::string* s = bpe_->id_to_token(id)) {
      token = *s;
    } else {
      continue;  // an id no token has decodes to nothing, as in transformers
    }
    // Each token's characters back to bytes through the byte-level table; a token with a
    // character outside the table contributes its own UTF-8 instead.
    const std::u32string chars = decode_utf8(token);
    std::string token_bytes;
    bool in_table = true;
    for (char32_t c : chars) {
      const int b = unicode_to_byte(c);
      if (b < 0) {
        in_table = false;
        break;
      }
      token_bytes.push_back(static_cast<char>(b));
    }
    bytes += in_table ? token_bytes : std::string(token);
  }
  std::u32string text = decode_utf8_lossy(bytes);
  // transformers' CLIPTokenizer.decode: every "</w>" becomes a space, then strip().
  // (Rebuilt rather than replace()d in place: GCC 12 reports a false -Wrestrict on the latter.)
  std::u32string spaced;
  spaced.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, U"</w>") == 0) {
      spaced.push_back(U' ');
      i += 4;
    } else {
      spaced.push_back(text[i++]);
    }
  }
  text = std::move(spaced);
  size_t begin = 0, end = text.size();
  while (begin < end && is_whitespace(text[begin])) ++begin;
  while (end > begin && is_whitespace(text[end - 1])) --end;
  return encode_utf8(std::u32string_view(text).substr(begin, end - begin));
}

int64_t CLIPTokenizer::vocab_size() const {
  int64_t size = bpe_->vocab_size();
  for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
  return size;
}

}  // namespace paradiff::models::tokenizers
