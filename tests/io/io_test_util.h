// Helpers for the io tests: a scratch directory, raw files, and hand-made safetensors images
// (the writer only produces valid files; hostile ones are assembled byte by byte here).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "paradiff/core/error.h"
#include "testing/temp_dir.h"

namespace paradiff::testing {

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error("cannot write test file " + path);
}

// 8-byte little-endian length, then the header text, then the data bytes.
inline std::string safetensors_image(std::string_view header, std::string_view data,
                                     uint64_t header_length) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &header_length, 8);
  out += header;
  out += data;
  return out;
}
inline std::string safetensors_image(std::string_view header, std::string_view data = {}) {
  return safetensors_image(header, data, header.size());
}

inline std::vector<std::byte> as_bytes(std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return std::vector<std::byte>(p, p + text.size());
}

}  // namespace paradiff::testing

// Expects `statement` to throw paradiff::Error whose message contains `substring`.
#define EXPECT_ERROR_CONTAINS(statement, substring)                                    \
  do {                                                                                 \
    try {                                                                              \
      statement;                                                                       \
      ADD_FAILURE() << "expected an Error containing: " << (substring);                \
    } catch (const ::paradiff::Error& e) {                                             \
      EXPECT_NE(std::string(e.what()).find(substring), std::string::npos) << e.what(); \
    }                                                                                  \
  } while (0)
