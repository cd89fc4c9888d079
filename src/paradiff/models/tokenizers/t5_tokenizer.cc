#include "paradiff/models/tokenizers/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/models/tokenizers/tokenizer_folder.h"
#include "paradiff/models/tokenizers/tokenizer_json.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

namespace {

constexpr char32_t kMetaSpace = U'\u2581';  // "▁"

// Protocol buffers' wire format, as far as reading one length-delimited field needs.
bool read_varint(std::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto b = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    value |= uint64_t{b & 0x7Fu} << shift;
    if (b < 0x80) return true;
  }
  return false;
}

// The bytes of the first length-delimited field `number` of a message; nothing when absent or
// when the message is malformed.
std::optional<std::string_view> find_field(std::string_view message, uint64_t number) {
  while (!message.empty()) {
    uint64_t key = 0, n = 0;
    if (!read_varint(message, key)) return std::nullopt;
    switch (key & 7) {
      case 0:  // varint
        if (!read_varint(message, n)) return std::nullopt;
        break;
      case 1:  // 64-bit
      case 5:  // 32-bit
        n = (key & 7) == 1 ? 8 : 4;
        if (message.size() < n) return std::nullopt;
        message.remove_prefix(n);
        break;
      case 2:  // length-delimited
        if (!read_varint(message, n) || n > message.size()) return std::nullopt;
        if ((key >> 3) == number) return message.substr(0, n);
        message.remove_prefix(n);
        break;
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// SentencePiece's ModelProto.normalizer_spec (field 3).precompiled_charsmap (field 2): what
// transformers 5 extracts from spiece.model for T5Tokenizer's Precompiled normalizer.
std::optional<std::string_view> precompiled_charsmap_of(std::string_view model_proto) {
  const auto spec = find_field(model_proto, 3);
  if (!spec) return std::nullopt;
  return find_field(*spec, 2);
}

}  // namespace

T5Tokenizer T5Tokenizer::from_pretrained(const std::string& folder) {
  const TokenizerFolder f = TokenizerFolder::read(folder);
  T5Tokenizer t;
  // The model's pieces by id, and which of them the unigram model may produce.
  auto pieces = std::make_shared<std::vector<std::string>>();
  std::vector<Unigram::Piece> usable;
  double min_score = std::numeric_limits<double>::infinity();  // over every piece, as tokenizers
  // Added tokens transformers makes up when the folder lists none (spiece.model only).
  std::vector<AddedToken> implied;
  const bool from_json = f.tokenizer_json && f.tokenizer_json->has("model");
  if (from_json) {
    t.path_ = f.file("tokenizer.json");
    TokenizerJsonModel model = read_tokenizer_json(*f.tokenizer_json, "T5Tokenizer", "Unigram");
    if (model.precompiled_charsmap)
      t.charsmap_ = std::make_shared<const PrecompiledCharsmap>(
          PrecompiledCharsmap::parse(*model.precompiled_charsmap, t.path_));
    for (const Unigram::Piece& p : model.unigram_pieces) {
      pieces->push_back(p.text);
      min_score = std::min(min_score, p.score);
    }
    usable = std::move(model.unigram_pieces);
  } else {
    t.path_ = f.file("spiece.model");
    PARADIFF_CHECK(std::filesystem::exists(t.path_), "T5 tokenizer folder '", folder,
                   "' has neither tokenizer.json nor spiece.model (the SentencePiece model the T5 "
                   "tokenizer runs)");
    auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
    const auto status = sp->Load(t.path_);
    PARADIFF_CHECK(status.ok(), t.path_,
                   ": cannot load the SentencePiece model (is the file truncated, or not a "
                   "SentencePiece model?): ",
                   status.ToString());
    PARADIFF_CHECK(sp->GetPieceSize() > 0, t.path_, ": the SentencePiece model has no pieces");
    // transformers 5 runs the same pipeline as for tokenizer.json over what it extracts from the
    // model: every piece with its score, and the normalizer's charsmap.
    for (int id = 0; id < sp->GetPieceSize(); ++id) {
      pieces->push_back(sp->IdToPiece(id));
      const auto score = static_cast<double>(sp->GetScore(id));
      min_score = std::min(min_score, score);
      usable.push_back({sp->IdToPiece(id), score, id});
      if (sp->IsControl(id) || sp->IsUnknown(id))
        implied.push_back(AddedToken{sp->IdToPiece(id), id, true, false, false, false});
    }
    const std::string proto = sp->serialized_model_proto();
    if (const auto charsmap = precompiled_charsmap_of(proto); charsmap && !charsmap->empty())
      t.charsmap_ = std::make_shared<const PrecompiledCharsmap>(
          PrecompiledCharsmap::parse(*charsmap, t.path_ + ": normalizer_spec"));
    // What transformers builds from spiece.model alone: the control and unknown pieces, then
    // extra_ids sentinels "<extra_id_i>" after the pieces, in reverse order.
    const int64_t extra = f.extra_ids.value_or(100);
    for (int64_t i = 0; i < extra; ++i)
      implied.push_back(AddedToken{str_cat("<extra_id_", i, ">"),
                                   sp->GetPieceSize() + extra - 1 - i, true, false, false, false});
  }

  // transformers' T5Tokenizer builds its Unigram with unk_id=2 whatever the model says.
  PARADIFF_CHECK(pieces->size() > 2, t.path_, ": the model has ", pieces->size(),
                 " pieces; T5's unknown piece is id 2");
  t.unk_id_ = 2;

  std::vector<AddedToken> added = f.added_tokens ? *f.added_tokens : implied;
  const std::string eos = f.eos_token.value_or("</s>");
  const std::string pad = f.pad_token.value_or("<pad>");
  const std::string unk = f.unk_token.value_or("<unk>");
  for (const std::string* special : {&eos, &pad, &unk}) {
    const AddedVocabulary listed(added);
    if (listed.find(*special) >= 0) continue;
    const auto it = std::find(pieces->begin(), pieces->end(), *special);
    PARADIFF_CHECK(it != pieces->end(), folder, ": special token '", *special,
                   "' is neither a piece of ", from_json ? "tokenizer.json" : "spiece.model",
                   " nor among the added tokens");
    added.push_back(AddedToken{*special, it - pieces->begin(), true, false, false, false});
  }
  Normalizer normalize;
  if (t.charsmap_)
    normalize = [m = t.charsmap_](std::u32string_view text) { return m->normalize(text); };
  t.added_ = AddedVocabulary(std::move(added), std::move(normalize));
  t.eos_id_ = t.added_.find(eos);
  t.pad_id_ = t.added_.find(pad);
  t.model_max_length_ = f.model_max_length.value_or(512);
  t.pad_left_ = f.padding_left;
  t.unigram_ = std::make_shared<const Unigram>(usable, t.unk_id_, min_score);
  t.pieces_ = std::move(pieces);
  return t;
}

void T5Tokenizer::encode_word(std::u32string_view word, std::vector<int64_t>& out) const {
  std::u32string text;
  // Metaspace: "▁" first, then a piece before every "▁" (the word is already normalized).
  text.reserve(word.size() + 1);
  if (word.front() != kMetaSpace) text.push_back(kMetaSpace);
  text.append(word);
  size_t begin = 0;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == kMetaSpace) {
      unigram_->encode(encode_utf8(std::u32string_view(text).substr(begin, i - begin)), out);
      begin = i;
    }
  }
}

std::vector<int64_t> T5Tokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> out;
  for (const TextSegment& segment : added_.split(decode_utf8(text))) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
      continue;
    }
    const std::u32string& s = segment.text;
    for (size_t i = 0; i < s.size();) {
      if (is_whitespace(s[i])) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < s.size() && !is_whitespace(s[end])) ++end;
      encode_word(std::u32string_view(s).substr(i, end - i), out);
      i = end;
    }
  }
  return out;
}

Encoding T5Tokenizer::encode(std::string_view text, int64_t max_length) const {
  EncodingLayout layout;
  layout.suffix = {eos_id_};
  layout.pad_id = pad_id_;
  layout.pad_left = pad_left_;
  return make_encoding(tokenize(text), layout, max_length);
}

Tensor T5Tokenizer::encode_batch(const std::vector<std::string>& prompts,
                                 int64_t max_length) const {
  std::vector<Encoding> encodings;
  encodings.reserve(prompts.size());
  for (const std::string& prompt : prompts) {
    encodings.push_back(encode(prompt, max_length));
    if (!encodings.back().truncated_ids.empty())
      log_warning(
          "The following part of your input was truncated because `max_sequence_length` "
          "is set to  ",
          max_length, " tokens: ['", decode(encodings.back().truncated_ids), "']");
  }
  return stack_input_ids(encodings);
}

std::string T5Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string out;
  std::string run;  // consecutive pieces, decoded together
  auto flush = [&] {
    if (run.empty()) return;
    // Metaspace's decoder: "▁" -> " ", the first one dropped.
    std::u32string text = decode_utf8(run);
    std::replace(text.begin(), text.end(), kMetaSpace, U' ');
    if (!text.empty() && text.front() == U' ') text.erase(text.begin());
    if (!out.empty() && !text.empty()) out += ' ';
    out += encode_utf8(text);
    run.clear();
  };
  for (int64_t id : ids) {
    if (const AddedToken* added = added_.by_id(id)) {
      flush();
      if (!(added->special && skip_special_tokens)) out += added->content;
    } else if (id >= 0 && id < static_cast<int64_t>(pieces_->size())) {
      run += (*pieces_)[static_cast<size_t>(id)];
    }
  }
  flush();
  return out;
}

int64_t T5Tokenizer::vocab_size() const {
  auto size = static_cast<int64_t>(pieces_->size());
  for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
  return size;
}

}  // namespace paradiff::models::tokenizers
