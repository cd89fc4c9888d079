// Base64 (RFC 4648, standard alphabet, with padding): how tokenizer.json stores SentencePiece's
// charsmap and how the OpenAI Images API carries PNG bytes in JSON (b64_json).
#pragma once

#include <string>
#include <string_view>

namespace paradiff {

std::string base64_encode(std::string_view bytes);
// Throws paradiff::Error naming `where` on a character outside the alphabet, misplaced padding
// or a length that is not a multiple of 4.
std::string base64_decode(std::string_view text, const std::string& where = "base64");

}  // namespace paradiff
