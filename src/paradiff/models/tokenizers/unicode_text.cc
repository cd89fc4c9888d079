#include "paradiff/models/tokenizers/unicode_text.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "paradiff/core/error.h"

namespace paradiff::models::tokenizers {

namespace {

std::u16string to_utf16(std::u32string_view text) {
  std::u16string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c >= 0x10000) {
      out.push_back(static_cast<char16_t>(U16_LEAD(c)));
      out.push_back(static_cast<char16_t>(U16_TRAIL(c)));
    } else {
      out.push_back(static_cast<char16_t>(c));
    }
  }
  return out;
}

std::u32string to_utf32(const char16_t* text, int32_t length) {
  std::u32string out;
  out.reserve(static_cast<size_t>(length));
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    U16_NEXT(text, i, length, c);
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

}  // namespace

namespace {

// The code point at s[i] if it starts a valid UTF-8 sequence, else -1; `len` receives the
// sequence length, or for an invalid one the length of its longest valid prefix (at least 1).
int64_t next_code_point(const unsigned char* s, size_t n, size_t i, size_t& len) {
  const unsigned char b = s[i];
  len = 1;
  if (b < 0x80) return b;
  size_t need = 0;
  char32_t c = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1, c = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2, c = b & 0x0F;
    if (b == 0xE0) lo = 0xA0;  // no overlongs
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3, c = b & 0x07;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return -1;
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= n) return -1;
    const unsigned char t = s[i + k];
    if (t < (k == 1 ? lo : 0x80) || t > (k == 1 ? hi : 0xBF)) return -1;
    c = (c << 6) | (t & 0x3F);
    len = k + 1;
  }
  return c;
}

}  // namespace

std::u32string decode_utf8_lossy(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0, len = 0; i < bytes.size(); i += len) {
    const int64_t c = next_code_point(s, bytes.size(), i, len);
    out.push_back(c >= 0 ? static_cast<char32_t>(c) : char32_t{0xFFFD});
  }
  return out;
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0, len = 0; i < text.size(); i += len) {
    const int64_t c = next_code_point(s, text.size(), i, len);
    PARADIFF_CHECK(c >= 0, "text is not valid UTF-8: bad byte sequence at byte ", i);
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(c, out);
  return out;
}

std::u32string nfc(std::u32string_view text) {
  if (text.empty()) return {};
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* normalizer = unorm2_getNFCInstance(&status);
  PARADIFF_CHECK(U_SUCCESS(status), "ICU: cannot load the NFC normalizer: ", u_errorName(status));
  const std::u16string src = to_utf16(text);
  const auto* usrc = reinterpret_cast<const UChar*>(src.data());
  const auto src_len = static_cast<int32_t>(src.size());
  // Fast path: most prompts are already in NFC.
  if (unorm2_isNormalized(normalizer, usrc, src_len, &status) && U_SUCCESS(status))
    return std::u32string(text);
  status = U_ZERO_ERROR;
  std::u16string dst(src.size() * 3 + 16, u'\0');
  int32_t len = unorm2_normalize(normalizer, usrc, src_len, reinterpret_cast<UChar*>(dst.data()),
                                 static_cast<int32_t>(dst.size()), &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) {
    status = U_ZERO_ERROR;
    dst.assign(static_cast<size_t>(len), u'\0');
    len = unorm2_normalize(normalizer, usrc, src_len, reinterpret_cast<UChar*>(dst.data()),
                           static_cast<int32_t>(dst.size()), &status);
  }
  PARADIFF_CHECK(U_SUCCESS(status), "ICU: NFC normalization failed: ", u_errorName(status));
  return to_utf32(dst.data(), len);
}

std::u32string lowercase(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    // Most characters have a one-to-one mapping; only a few (İ) expand, which the full mapping
    // of u_strToLower gives. Lowercasing one code point at a time keeps it free of context.
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    UChar src[2];
    int32_t n = 0;
    U16_APPEND_UNSAFE(src, n, static_cast<UChar32>(c));
    UChar dst[8];
    UErrorCode status = U_ZERO_ERROR;
    const int32_t m = u_strToLower(dst, 8, src, n, "", &status);
    if (U_FAILURE(status)) {
      out.push_back(c);
      continue;
    }
    for (int32_t i = 0; i < m;) {
      UChar32 x;
      U16_NEXT(dst, i, m, x);
      out.push_back(static_cast<char32_t>(x));
    }
  }
  return out;
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0;
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0;
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE);
}

}  // namespace paradiff::models::tokenizers
