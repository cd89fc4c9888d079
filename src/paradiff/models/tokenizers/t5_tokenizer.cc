#include "paradiff/models/tokenizers/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>

#include "paradiff/core/error.h"
#include "paradiff/core/logging.h"
#include "paradiff/models/tokenizers/tokenizer_folder.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

namespace {

constexpr std::string_view kMetaSpace = "\xe2\x96\x81";  // U+2581 "▁"

// The id of a token: an added token's, else the SentencePiece piece's; -1 when neither has it.
int64_t find_token(const sentencepiece::SentencePieceProcessor& sp, const AddedVocabulary& added,
                   const std::string& content) {
  if (const int64_t id = added.find(content); id >= 0) return id;
  const int id = sp.PieceToId(content);  // the unknown piece's id when absent
  return id >= 0 && id < sp.GetPieceSize() && sp.IdToPiece(id) == content ? id : -1;
}

}  // namespace

T5Tokenizer T5Tokenizer::from_pretrained(const std::string& folder) {
  const TokenizerFolder f = TokenizerFolder::read(folder);
  T5Tokenizer t;
  t.path_ = f.file("spiece.model");
  PARADIFF_CHECK(std::filesystem::exists(t.path_), "T5 tokenizer folder '", folder,
                 "' has no spiece.model (the SentencePiece model the T5 tokenizer runs)");
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(t.path_);
  PARADIFF_CHECK(status.ok(), t.path_,
                 ": cannot load the SentencePiece model: ", status.ToString());
  PARADIFF_CHECK(sp->GetPieceSize() > 0, t.path_, ": the SentencePiece model has no pieces");

  std::vector<AddedToken> added;
  if (f.added_tokens) {
    added = *f.added_tokens;
  } else {
    // What transformers builds from spiece.model alone: the control and unknown pieces, then
    // extra_ids sentinels "<extra_id_i>" after the pieces, in reverse order.
    for (int id = 0; id < sp->GetPieceSize(); ++id)
      if (sp->IsControl(id) || sp->IsUnknown(id))
        added.push_back(AddedToken{sp->IdToPiece(id), id, true, false, false, false});
    const int64_t extra = f.extra_ids.value_or(100);
    for (int64_t i = 0; i < extra; ++i)
      added.push_back(AddedToken{str_cat("<extra_id_", i, ">"), sp->GetPieceSize() + extra - 1 - i,
                                 true, false, false, false});
  }
  const std::string eos = f.eos_token.value_or("</s>");
  const std::string pad = f.pad_token.value_or("<pad>");
  const std::string unk = f.unk_token.value_or("<unk>");
  for (const std::string* special : {&eos, &pad, &unk}) {
    const AddedVocabulary listed(added);
    if (listed.find(*special) >= 0) continue;
    const int64_t id = find_token(*sp, listed, *special);
    PARADIFF_CHECK(id >= 0, folder, ": special token '", *special,
                   "' is neither a piece of spiece.model nor among the added tokens");
    added.push_back(AddedToken{*special, id, true, false, false, false});
  }
  t.added_ = AddedVocabulary(std::move(added));
  t.eos_id_ = t.added_.find(eos);
  t.pad_id_ = t.added_.find(pad);
  t.unk_id_ = t.added_.find(unk);
  t.model_max_length_ = f.model_max_length.value_or(512);
  t.pad_left_ = f.padding_left;
  auto pieces = std::make_shared<std::unordered_map<std::string, Piece>>();
  double min_score = 0;
  for (int id = 0; id < sp->GetPieceSize(); ++id) {
    min_score = std::min(min_score, static_cast<double>(sp->GetScore(id)));
    if (sp->IsControl(id) || sp->IsUnknown(id) || sp->IsByte(id)) continue;
    const std::string piece = sp->IdToPiece(id);
    pieces->emplace(piece, Piece{id, static_cast<double>(sp->GetScore(id))});
    t.max_piece_bytes_ = std::max(t.max_piece_bytes_, piece.size());
  }
  t.unk_score_ = min_score - 10.0;
  t.pieces_ = std::move(pieces);
  t.sp_ = std::move(sp);
  return t;
}

void T5Tokenizer::encode_word(const std::string& word, std::vector<int64_t>& out) const {
  // The word normalized by the model's normalizer: the concatenation of the pieces
  // libsentencepiece cuts it into (an unknown piece carries its normalized text too).
  std::vector<std::string> normalized_pieces;
  const auto status = sp_->Encode(word, &normalized_pieces);
  PARADIFF_CHECK(status.ok(), path_,
                 ": SentencePiece failed to normalize a word: ", status.ToString());
  std::string text;
  for (const std::string& p : normalized_pieces) text += p;
  if (text.empty()) return;  // the normalizer removed every character
  if (!std::string_view(text).starts_with(kMetaSpace)) text.insert(0, kMetaSpace);

  // Best path over byte positions that start a character.
  struct Node {
    double score = 0;
    int64_t start = -1;  // where the last piece of the best path ending here starts
    int32_t id = -1;
  };
  const size_t n = text.size();
  std::vector<Node> best(n + 1);
  auto char_len = [&](size_t i) {
    const auto b = static_cast<unsigned char>(text[i]);
    return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  };
  auto relax = [&](size_t start, size_t end, double score, int32_t id) {
    Node& node = best[end];
    const double candidate = best[start].score + score;
    if (node.start < 0 || candidate > node.score)
      node = {candidate, static_cast<int64_t>(start), id};
  };
  for (size_t start = 0; start < n;) {
    const size_t first = std::min<size_t>(static_cast<size_t>(char_len(start)), n - start);
    bool single = false;
    // Pieces starting here, shortest first (the order of a trie's common-prefix search).
    for (size_t len = first; len <= max_piece_bytes_ && start + len <= n;) {
      const auto it = pieces_->find(text.substr(start, len));
      if (it != pieces_->end()) {
        relax(start, start + len, it->second.score, it->second.id);
        single = single || len == first;
      }
      if (start + len >= n) break;
      len += static_cast<size_t>(char_len(start + len));
    }
    if (!single) relax(start, start + first, unk_score_, static_cast<int32_t>(unk_id_));
    start += first;
  }
  // Back from the end; consecutive unknown characters become one "<unk>".
  std::vector<int64_t> ids;
  for (int64_t end = static_cast<int64_t>(n); end > 0; end = best[end].start) {
    const int64_t id = best[end].id;
    if (!(id == unk_id_ && !ids.empty() && ids.back() == unk_id_)) ids.push_back(id);
  }
  out.insert(out.end(), ids.rbegin(), ids.rend());
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
      encode_word(encode_utf8(std::u32string_view(s).substr(i, end - i)), out);
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
  std::vector<int> run;  // consecutive SentencePiece ids, decoded together
  auto flush = [&] {
    if (run.empty()) return;
    std::string text;
    const auto status = sp_->Decode(run, &text);
    PARADIFF_CHECK(status.ok(), path_, ": SentencePiece failed to decode: ", status.ToString());
    if (!out.empty() && !text.empty()) out += ' ';
    out += text;
    run.clear();
  };
  for (int64_t id : ids) {
    if (const AddedToken* added = added_.by_id(id)) {
      flush();
      if (!(added->special && skip_special_tokens)) out += added->content;
    } else if (id >= 0 && id < sp_->GetPieceSize()) {
      run.push_back(static_cast<int>(id));
    }
  }
  flush();
  return out;
}

int64_t T5Tokenizer::vocab_size() const {
  int64_t size = sp_->GetPieceSize();
  for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
  return size;
}

}  // namespace paradiff::models::tokenizers
