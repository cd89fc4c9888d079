#include "paradiff/models/tokenizers/added_tokens.h"

#include <algorithm>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, Normalizer normalize)
    : normalize_(std::move(normalize)) {
  for (AddedToken& token : tokens) {
    PARADIFF_CHECK(!token.content.empty(), "added token with id ", token.id, " has empty content");
    PARADIFF_CHECK(token.id >= 0, "added token '", token.content, "' has a negative id ", token.id);
    auto same = std::find_if(tokens_.begin(), tokens_.end(),
                             [&](const AddedToken& t) { return t.content == token.content; });
    if (same != tokens_.end()) {
      *same = std::move(token);
    } else {
      tokens_.push_back(std::move(token));
    }
  }
  for (const AddedToken& token : tokens_) {
    const std::u32string content = decode_utf8(token.content);
    if (!token.normalized) {
      raw_.push_back({content, token});
    } else {
      normalized_.push_back({normalize_ ? normalize_(content) : content, token});
      if (normalized_.back().content.empty()) normalized_.pop_back();  // can never match
    }
  }
  for (auto* patterns : {&raw_, &normalized_})
    std::stable_sort(patterns->begin(), patterns->end(), [](const Pattern& a, const Pattern& b) {
      return a.content.size() > b.content.size();
    });
}

int64_t AddedVocabulary::find(std::string_view content) const {
  for (const AddedToken& token : tokens_)
    if (token.content == content) return token.id;
  return -1;
}

const AddedToken* AddedVocabulary::by_id(int64_t id) const {
  for (const AddedToken& token : tokens_)
    if (token.id == id) return &token;
  return nullptr;
}

void AddedVocabulary::split_at(std::u32string_view text, const std::vector<Pattern>& patterns,
                               std::vector<TextSegment>& out) {
  size_t piece_start = 0;  // start of the text not yet emitted
  size_t i = 0;
  while (i < text.size()) {
    const Pattern* match = nullptr;
    for (const Pattern& p : patterns) {
      if (text.compare(i, p.content.size(), p.content) == 0) {
        match = &p;  // longest first: the first match is the longest at this position
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + match->content.size();
    if (match->token.lstrip)
      while (start > piece_start && is_whitespace(text[start - 1])) --start;
    if (match->token.rstrip)
      while (stop < text.size() && is_whitespace(text[stop])) ++stop;
    if (start > piece_start)
      out.push_back({-1, std::u32string(text.substr(piece_start, start - piece_start))});
    out.push_back({match->token.id, {}});
    piece_start = i = stop;
  }
  if (piece_start < text.size()) out.push_back({-1, std::u32string(text.substr(piece_start))});
}

std::vector<TextSegment> AddedVocabulary::split(std::u32string_view text) const {
  std::vector<TextSegment> raw_pieces;
  split_at(text, raw_, raw_pieces);
  std::vector<TextSegment> out;
  for (TextSegment& piece : raw_pieces) {
    if (piece.id >= 0) {
      out.push_back(std::move(piece));
      continue;
    }
    const std::u32string normalized = normalize_ ? normalize_(piece.text) : piece.text;
    split_at(normalized, normalized_, out);
  }
  std::erase_if(out, [](const TextSegment& s) { return s.id < 0 && s.text.empty(); });
  return out;
}

}  // namespace paradiff::models::tokenizers
