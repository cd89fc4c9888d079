#include "paradiff/models/tokenizers/unigram.h"

#include <algorithm>

namespace paradiff::models::tokenizers {

Unigram::Unigram(const std::vector<Piece>& pieces, int64_t unk_id, double min_score)
    : unk_id_(unk_id), unk_score_(min_score - 10.0) {
  pieces_.reserve(pieces.size());
  for (const Piece& p : pieces) {
    if (p.text.empty()) continue;
    pieces_.insert_or_assign(p.text, Entry{p.id, p.score});
    max_piece_bytes_ = std::max(max_piece_bytes_, p.text.size());
  }
}

void Unigram::encode(std::string_view text, std::vector<int64_t>& out) const {
  // Best path over byte positions that start a character.
  struct Node {
    double score = 0;
    int64_t start = -1;  // where the last piece of the best path ending here starts
    int64_t id = -1;
  };
  const size_t n = text.size();
  if (n == 0) return;
  std::vector<Node> best(n + 1);
  auto char_len = [&](size_t i) -> size_t {
    const auto b = static_cast<unsigned char>(text[i]);
    return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  };
  auto relax = [&](size_t start, size_t end, double score, int64_t id) {
    Node& node = best[end];
    const double candidate = best[start].score + score;
    if (node.start < 0 || candidate > node.score)
      node = {candidate, static_cast<int64_t>(start), id};
  };
  for (size_t start = 0; start < n;) {
    const size_t first = std::min(char_len(start), n - start);
    bool single = false;
    // Pieces starting here, shortest first (the order of a trie's common-prefix search).
    for (size_t len = first; len <= max_piece_bytes_ && start + len <= n;) {
      const auto it = pieces_.find(std::string(text.substr(start, len)));
      if (it != pieces_.end()) {
        relax(start, start + len, it->second.score, it->second.id);
        single = single || len == first;
      }
      if (start + len >= n) break;
      len += char_len(start + len);
    }
    if (!single) relax(start, start + first, unk_score_, unk_id_);
    start += first;
  }
  // Back from the end; consecutive unknown characters become one unknown id.
  std::vector<int64_t> ids;
  for (int64_t end = static_cast<int64_t>(n); end > 0; end = best[end].start) {
    const int64_t id = best[end].id;
    if (!(id == unk_id_ && !ids.empty() && ids.back() == unk_id_)) ids.push_back(id);
  }
  out.insert(out.end(), ids.rbegin(), ids.rend());
}

}  // namespace paradiff::models::tokenizers
