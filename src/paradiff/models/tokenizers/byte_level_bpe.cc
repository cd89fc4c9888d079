#include "paradiff/models/tokenizers/byte_level_bpe.h"

#include <nlohmann/json.hpp>
#include <queue>

#include "paradiff/core/error.h"
#include "paradiff/io/json_config.h"
#include "paradiff/models/tokenizers/tokenizer_folder.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

namespace {

struct ByteTable {
  char32_t to_unicode[256];
  ByteTable() {
    // Bytes that are printable on their own keep their code point; the rest take the next free
    // code points from U+0100 on, in byte order.
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) to_unicode[b] = printable(b) ? static_cast<char32_t>(b) : next++;
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

}  // namespace

char32_t byte_to_unicode(uint8_t byte) {
  return byte_table().to_unicode[byte];
}

int unicode_to_byte(char32_t c) {
  if (c < 0x100) {
    const int b = static_cast<int>(c);
    return byte_to_unicode(static_cast<uint8_t>(b)) == c ? b : -1;
  }
  if (c < 0x100 + 68) {
    for (int b = 0; b < 256; ++b)
      if (byte_to_unicode(static_cast<uint8_t>(b)) == c) return b;
  }
  return -1;
}

BytePairEncoding BytePairEncoding::load(const std::string& vocab_json,
                                        const std::string& merges_txt,
                                        const std::string& end_of_word_suffix,
                                        const std::string& unk_token) {
  BytePairEncoding bpe;
  {
    const JsonConfig vocab = JsonConfig::load(vocab_json);
    const nlohmann::json& root = vocab.root();
    PARADIFF_CHECK(!root.empty(), vocab_json, ": the vocabulary is empty");
    bpe.vocab_.reserve(root.size());
    for (const auto& [token, id] : root.items()) {
      PARADIFF_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                         id.get<int64_t>() < (int64_t{1} << 31),
                     vocab_json, ": the id of token ", json_excerpt(nlohmann::json(token)),
                     " must be an integer in [0, 2^31), got ", json_excerpt(id));
      const auto i = static_cast<int32_t>(id.get<int64_t>());
      bpe.vocab_.emplace(token, i);
      if (static_cast<size_t>(i) >= bpe.id_to_token_.size()) {
        bpe.id_to_token_.resize(static_cast<size_t>(i) + 1);
        bpe.id_used_.resize(static_cast<size_t>(i) + 1, false);
      }
      if (!bpe.id_used_[i]) bpe.id_to_token_[i] = token, bpe.id_used_[i] = true;
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(byte_to_unicode(static_cast<uint8_t>(b)), s);
    bpe.byte_id_[b] = static_cast<int32_t>(bpe.token_to_id(s));
    bpe.byte_end_id_[b] = static_cast<int32_t>(bpe.token_to_id(s + end_of_word_suffix));
  }
  bpe.unk_id_ = static_cast<int32_t>(bpe.token_to_id(unk_token));
  PARADIFF_CHECK(bpe.unk_id_ >= 0, vocab_json, ": the unknown token '", unk_token,
                 "' is not in the vocabulary");

  const std::string text = read_text_file(merges_txt);
  size_t pos = 0;
  int32_t rank = 0;
  for (int64_t line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("#version")) continue;
    const size_t space = line.find(' ');
    const bool two_parts = space != std::string_view::npos && space > 0 &&
                           space + 1 < line.size() &&
                           line.find(' ', space + 1) == std::string_view::npos;
    PARADIFF_CHECK(two_parts, merges_txt, ": line ", line_no,
                   ": expected two tokens separated by one space, got ",
                   json_excerpt(nlohmann::json(std::string(line))));
    const std::string_view left = line.substr(0, space), right = line.substr(space + 1);
    const std::string merged = std::string(left) + std::string(right);
    for (std::string_view part : {left, right, std::string_view(merged)})
      PARADIFF_CHECK(bpe.token_to_id(part) >= 0, merges_txt, ": line ", line_no, ": token ",
                     json_excerpt(nlohmann::json(std::string(part))), " is not in ", vocab_json);
    // A pair listed twice keeps its last rank, as the reference's hash map does.
    bpe.merges_[pair_key(bpe.token_to_id(left), bpe.token_to_id(right))] =
        Merge{rank++, static_cast<int32_t>(bpe.token_to_id(merged))};
  }
  return bpe;
}

int64_t BytePairEncoding::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BytePairEncoding::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size() || !id_used_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

void BytePairEncoding::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  const auto n = static_cast<int32_t>(word.size());
  if (n == 0) return;
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const auto b = static_cast<uint8_t>(word[i]);
    const int32_t id = i + 1 == n ? byte_end_id_[b] : byte_id_[b];
    symbols[i] = {id >= 0 ? id : unk_id_, i - 1, i + 1 < n ? i + 1 : -1, true};
  }
  struct Candidate {
    int32_t rank, pos, new_id;
    // priority_queue pops the largest: invert so that the lowest rank, then leftmost, comes first.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate> queue;
  auto push_pair = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip entries made stale by an earlier merge of either symbol.
    const auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace paradiff::models::tokenizers
