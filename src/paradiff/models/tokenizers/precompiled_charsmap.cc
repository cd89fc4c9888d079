#include "paradiff/models/tokenizers/precompiled_charsmap.h"

#include <unicode/ubrk.h>
#include <unicode/utf16.h>

#include <memory>

#include "paradiff/core/error.h"
#include "paradiff/models/tokenizers/unicode_text.h"

namespace paradiff::models::tokenizers {

namespace {

// Darts-clone's unit layout.
bool has_leaf(uint32_t unit) {
  return (unit >> 8) & 1;
}
uint32_t value(uint32_t unit) {
  return unit & 0x7FFFFFFFu;
}
uint32_t label(uint32_t unit) {
  return unit & 0x800000FFu;
}
uint32_t offset(uint32_t unit) {
  return (unit >> 10) << ((unit & (1u << 9)) >> 6);
}

// The extended grapheme clusters of `text`, as [begin, end) code point indices.
std::vector<std::pair<size_t, size_t>> graphemes(std::u32string_view text) {
  std::u16string utf16;
  std::vector<size_t> code_point_at;  // utf16 index -> code point index
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<UChar32>(text[i]);
    code_point_at.push_back(i);
    if (c >= 0x10000) {
      utf16.push_back(static_cast<char16_t>(U16_LEAD(c)));
      utf16.push_back(static_cast<char16_t>(U16_TRAIL(c)));
      code_point_at.push_back(i);
    } else {
      utf16.push_back(static_cast<char16_t>(c));
    }
  }
  code_point_at.push_back(text.size());
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<UBreakIterator, decltype(&ubrk_close)> it(
      ubrk_open(UBRK_CHARACTER, "", reinterpret_cast<const UChar*>(utf16.data()),
                static_cast<int32_t>(utf16.size()), &status),
      &ubrk_close);
  PARADIFF_CHECK(U_SUCCESS(status),
                 "ICU: cannot open a grapheme break iterator: ", u_errorName(status));
  std::vector<std::pair<size_t, size_t>> out;
  int32_t begin = ubrk_first(it.get());
  for (int32_t end = ubrk_next(it.get()); end != UBRK_DONE; end = ubrk_next(it.get())) {
    out.push_back(
        {code_point_at[static_cast<size_t>(begin)], code_point_at[static_cast<size_t>(end)]});
    begin = end;
  }
  return out;
}

}  // namespace

PrecompiledCharsmap PrecompiledCharsmap::parse(std::string_view blob, const std::string& where) {
  PARADIFF_CHECK(blob.size() >= 4, where, ": the precompiled charsmap has ", blob.size(),
                 " bytes, fewer than its 4-byte header");
  const auto* b = reinterpret_cast<const unsigned char*>(blob.data());
  const uint64_t trie_bytes =
      uint64_t{b[0]} | uint64_t{b[1]} << 8 | uint64_t{b[2]} << 16 | uint64_t{b[3]} << 24;
  PARADIFF_CHECK(trie_bytes % 4 == 0 && trie_bytes <= blob.size() - 4, where,
                 ": the precompiled charsmap's trie size ", trie_bytes,
                 " must be a multiple of 4 within its ", blob.size() - 4, " bytes");
  PrecompiledCharsmap m;
  m.trie_.resize(trie_bytes / 4);
  for (size_t i = 0; i < m.trie_.size(); ++i) {
    const unsigned char* u = b + 4 + 4 * i;
    m.trie_[i] = uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
  }
  m.normalized_ = std::string(blob.substr(4 + trie_bytes));
  try {
    decode_utf8(m.normalized_);
  } catch (const Error&) {
    PARADIFF_CHECK(false, where, ": the precompiled charsmap's replacement strings are not UTF-8");
  }
  return m;
}

std::optional<std::string_view> PrecompiledCharsmap::transform(std::string_view bytes) const {
  // Darts-clone's common-prefix search, stopping at the first (shortest) key found.
  if (trie_.empty()) return std::nullopt;
  size_t pos = offset(trie_[0]);
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) break;
    pos ^= c;
    if (pos >= trie_.size()) return std::nullopt;
    const uint32_t unit = trie_[pos];
    if (label(unit) != c) return std::nullopt;
    pos ^= offset(unit);
    if (has_leaf(unit)) {
      if (pos >= trie_.size()) return std::nullopt;
      const size_t start = value(trie_[pos]);
      if (start > normalized_.size()) return std::nullopt;
      const size_t end = normalized_.find('\0', start);
      return std::string_view(normalized_)
          .substr(start, (end == std::string::npos ? normalized_.size() : end) - start);
    }
  }
  return std::nullopt;
}

std::u32string PrecompiledCharsmap::normalize(std::u32string_view text) const {
  std::u32string out;
  out.reserve(text.size());
  auto append = [&](std::string_view replacement) {
    // A replacement that starts or ends inside a character is cut as bytes; keep it decodable.
    const std::u32string r = decode_utf8_lossy(replacement);
    out.append(r);
  };
  for (const auto& [begin, end] : graphemes(text)) {
    const std::u32string_view cluster = text.substr(begin, end - begin);
    const std::string bytes = encode_utf8(cluster);
    if (bytes.size() < 6) {
      if (const auto r = transform(bytes)) {
        append(*r);
        continue;
      }
    }
    for (const char32_t c : cluster) {
      std::string one;
      append_utf8(c, one);
      if (const auto r = transform(one)) {
        append(*r);
      } else {
        out.push_back(c);
      }
    }
  }
  return out;
}

}  // namespace paradiff::models::tokenizers
