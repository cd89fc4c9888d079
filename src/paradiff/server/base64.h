// Base64 (RFC 4648, with padding): how the OpenAI Images API carries PNG bytes in JSON
// (b64_json).
#pragma once

#include <string>

namespace paradiff::server {

std::string base64_encode(const std::string& bytes);
// Throws paradiff::Error on a character outside the alphabet or a bad length.
std::string base64_decode(const std::string& text);

}  // namespace paradiff::server
