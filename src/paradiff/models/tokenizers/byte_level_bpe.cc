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

void BytePairEncoding::set_vocab(const nlohmann::json& root, const std::string& where) {
  PARADIFF_CHECK(root.is_object(), where, ": the vocabulary must be a JSON object, got ",
                 json_excerpt(root));
  PARADIFF_CHECK(!root.empty(), where, ": the vocabulary is empty");
  vocab_.reserve(root.size());
  for (const auto& [token, id] : root.items()) {
    PARADIFF_CHECK(
        id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (int64_t{1} << 31),
        where, ": the id of token ", json_excerpt(nlohmann::json(token)),
        " must be an integer in [0, 2^31), got ", json_excerpt(id));
    const auto i = static_cast<int32_t>(id.get<int64_t>());
    vocab_.emplace(token, i);
    if (static_cast<size_t>(i) >= id_to_token_.size()) {
      // Ids need not be dense; an absurd one would make this table huge, so cap it by the count.
      PARADIFF_CHECK(static_cast<size_t>(i) < root.size() + (size_t{1} << 20), where, ": token ",
                     json_excerpt(nlohmann::json(token)), " has id ", i,
                     ", far beyond the vocabulary's ", root.size(), " tokens");
      id_to_token_.resize(static_cast<size_t>(i) + 1);
      id_used_.resize(static_cast<size_t>(i) + 1, false);
    }
    if (!id_used_[i]) id_to_token_[i] = token, id_used_[i] = true;
  }
}

void BytePairEncoding::set_symbols(const BpeOptions& options, const std::string& where) {
  for (int b = 0; b < 256; ++b) {
    std::string s;
    append_utf8(byte_to_unicode(static_cast<uint8_t>(b)), s);
    byte_id_[b] = static_cast<int32_t>(token_to_id(s));
    byte_end_id_[b] = static_cast<int32_t>(token_to_id(s + options.end_of_word_suffix));
  }
  if (options.unk_token) {
    unk_id_ = static_cast<int32_t>(token_to_id(*options.unk_token));
    PARADIFF_CHECK(unk_id_ >= 0, where, ": the unknown token '", *options.unk_token,
                   "' is not in the vocabulary");
  }
}

void BytePairEncoding::add_merge(std::string_view left, std::string_view right,
                                 const std::string& where, const std::string& vocab_name) {
  const std::string merged = std::string(left) + std::string(right);
  for (std::string_view part : {left, right, std::string_view(merged)})
    PARADIFF_CHECK(token_to_id(part) >= 0, where, ": token ",
                   json_excerpt(nlohmann::json(std::string(part))), " is not in ", vocab_name);
  // A pair listed twice keeps its last rank, as the reference's hash map does.
  merges_[pair_key(token_to_id(left), token_to_id(right))] =
      Merge{next_rank_++, static_cast<int32_t>(token_to_id(merged))};
}

BytePairEncoding BytePairEncoding::load(const std::string& vocab_json,
                                        const std::string& merges_txt, const BpeOptions& options) {
  BytePairEncoding bpe;
  bpe.set_vocab(JsonConfig::load(vocab_json).root(), vocab_json);
  bpe.set_symbols(options, vocab_json);

  const std::string text = read_text_file(merges_txt);
  size_t pos = 0;
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
    bpe.add_merge(line.substr(0, space), line.substr(space + 1),
                  str_cat(merges_txt, ": line ", line_no), vocab_json);
  }
  return bpe;
}

BytePairEncoding BytePairEncoding::from_json(const nlohmann::json& vocab,
                                             const nlohmann::json& merges,
                                             const BpeOptions& options, const std::string& where) {
  BytePairEncoding bpe;
  bpe.set_vocab(vocab, where + ": model.vocab");
  bpe.set_symbols(options, where + ": model.vocab");
  PARADIFF_CHECK(merges.is_array(), where, ": model.merges must be a list, got ",
                 json_excerpt(merges));
  for (size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& m = merges[i];
    const std::string at = str_cat(where, ": model.merges[", i, "]");
    if (m.is_string()) {
      // Older files: "left right", split at the first space as transformers does.
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      PARADIFF_CHECK(space != std::string::npos && space > 0 && space + 1 < s.size() &&
                         s.find(' ', space + 1) == std::string::npos,
                     at, ": expected two tokens separated by one space, got ", json_excerpt(m));
      bpe.add_merge(std::string_view(s).substr(0, space), std::string_view(s).substr(space + 1), at,
                    "model.vocab");
    } else {
      PARADIFF_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), at,
                     ": expected a pair of token strings, got ", json_excerpt(m));
      bpe.add_merge(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>(), at,
                    "model.vocab");
    }
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
  if (word.empty()) return;
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    const auto b = static_cast<uint8_t>(word[i]);
    int32_t id = i + 1 == word.size() ? byte_end_id_[b] : byte_id_[b];
    if (id < 0) id = unk_id_;
    if (id < 0) continue;  // no unknown token: the character is dropped
    symbols.push_back({id, static_cast<int32_t>(symbols.size()) - 1, -1, true});
  }
  const auto n = static_cast<int32_t>(symbols.size());
  if (n == 0) return;
  for (int32_t i = 0; i + 1 < n; ++i) symbols[i].next = i + 1;
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
