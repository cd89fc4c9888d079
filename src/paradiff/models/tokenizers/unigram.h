// The unigram language model of SentencePiece as the HuggingFace `tokenizers` library runs it
// (its `Unigram` model): a word is cut into the pieces of the best path (Viterbi) over the
// pieces' log-probability scores. Among paths of equal score the one found first wins (pieces
// starting at each position are tried shortest first); a character no piece starts with becomes
// the unknown piece with score min(score) - 10, and consecutive unknown characters become one
// unknown id. (Debian's libsentencepiece 0.1.97 breaks the ties the other way: "1,000,000" ->
// ",", "00", "0" instead of ",", "0", "00"; hence this implementation.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace paradiff::models::tokenizers {

class Unigram {
 public:
  struct Piece {
    std::string text;  // UTF-8, not empty
    double score = 0;
    int64_t id = -1;
  };
  Unigram() = default;
  // `pieces`: those a path may use (a piece listed twice keeps its last id and score, as in
  // `tokenizers`). `min_score`: the lowest score of the whole vocabulary, for the unknown piece's.
  Unigram(const std::vector<Piece>& pieces, int64_t unk_id, double min_score);

  // Appends the ids of one normalized word (UTF-8) to `out`.
  void encode(std::string_view word, std::vector<int64_t>& out) const;
  int64_t unk_id() const { return unk_id_; }

 private:
  struct Entry {
    int64_t id;
    double score;
  };
  std::unordered_map<std::string, Entry> pieces_;
  size_t max_piece_bytes_ = 0;
  int64_t unk_id_ = -1;
  double unk_score_ = 0;
};

}  // namespace paradiff::models::tokenizers
