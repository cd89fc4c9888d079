// The Unicode facts the tokenizers need: UTF-8 decoding, NFC, lowercasing, and the character
// classes of their regular expressions (\p{L}, \p{N}, \s). They come from ICU (Debian's
// libicu-dev) rather than a table of our own: NFC needs the full composition data, which no small
// table carries, and ICU's data is the Unicode Character Database itself.
//
// Checked against the reference (HuggingFace `tokenizers`, whose regexes are Oniguruma's and
// whose lowercasing is Rust's) on every code point: the classes, the whitespace set and the
// single-character lowercase and NFC mappings agree everywhere except on characters first
// assigned after the Unicode version of the ICU we link (ICU 72 = Unicode 15.0; the reference
// knows Unicode 16.0, e.g. the Todhri script), which ICU treats as unassigned punctuation-like
// symbols.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace paradiff::models::tokenizers {

// Code points of UTF-8 text. Text that is not valid UTF-8 (overlong forms and surrogates
// included) is an error naming the byte offset: a Python str, which is what diffusers tokenizes,
// can never hold it, so there is no reference behaviour to follow.
std::u32string decode_utf8(std::string_view text);
// The same for bytes that may be invalid (decoded token bytes): each invalid sequence becomes
// one U+FFFD, as Python's bytes.decode(errors="replace").
std::u32string decode_utf8_lossy(std::string_view bytes);
std::string encode_utf8(std::u32string_view text);
void append_utf8(char32_t c, std::string& out);

// Unicode Normalization Form C.
std::u32string nfc(std::u32string_view text);
// Full lowercase mapping of each code point on its own (no context: a final capital sigma
// becomes σ, not ς; İ becomes i + U+0307), as Rust's char::to_lowercase.
std::u32string lowercase(std::u32string_view text);

// General category L (Lu, Ll, Lt, Lm, Lo).
bool is_letter(char32_t c);
// General category N (Nd, Nl, No).
bool is_number(char32_t c);
// The White_Space property (25 code points: \t..\r, space, U+0085, U+00A0, U+1680,
// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000): what \s matches in the reference's
// regexes and what Rust's char::is_whitespace tests.
bool is_whitespace(char32_t c);

}  // namespace paradiff::models::tokenizers
