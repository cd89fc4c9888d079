// Reading .safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte span, then the data.
// The file is memory-mapped read-only and validated completely when opened, so that every later
// read is a plain, in-bounds memory access: a hostile or damaged file fails at open with an Error
// naming the file, the problem and the values, never with a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "paradiff/core/tensor.h"

namespace paradiff {

// Every element type the safetensors format defines; a file with any of them opens, but only some
// can be read into a Tensor (see SafetensorsFile::read).
enum class SafetensorsDType : uint8_t {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  I32,
  U32,
  I64,
  U64,
  F16,
  BF16,
  F32,
  F64,
  F8_E4M3,
  F8_E5M2,
};

// "F32", "BF16", ... as written in the header.
std::string_view safetensors_dtype_name(SafetensorsDType dtype);
size_t safetensors_dtype_size(SafetensorsDType dtype);
std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name);
// The same element type as a paradiff DType, if there is one (F32, BF16, F16, I64).
std::optional<DType> native_dtype(SafetensorsDType dtype);
// The header string for a paradiff DType (F32 -> "F32").
SafetensorsDType safetensors_dtype(DType dtype);

// One tensor's entry in the header, validated.
struct SafetensorsTensorInfo {
  SafetensorsDType dtype = SafetensorsDType::F32;
  std::vector<int64_t> shape;  // may have more dims than Shape supports; read() then refuses
  int64_t numel = 0;
  uint64_t begin = 0;  // byte span [begin, end) within the data region
  uint64_t end = 0;
  uint64_t file_offset = 0;  // absolute position of `begin` in the file

  uint64_t nbytes() const { return end - begin; }
  std::string describe() const;  // "BF16[3072, 64] at bytes [8, 393224) of the file"
};

// The validated table of contents of a safetensors file.
struct SafetensorsHeader {
  uint64_t data_offset = 0;  // where the data region starts: 8 + header length
  std::map<std::string, SafetensorsTensorInfo> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
};

// The header may be at most this long (the reference implementation's limit): a longer one is a
// damaged or hostile file, and parsing it would cost unbounded memory.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Validates a whole safetensors file held in memory (only the first 8 + header-length bytes are
// parsed; the size of the rest is checked against the spans). `name` prefixes every error. This
// is the one parser both SafetensorsFile and the fuzzer use.
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file,
                                           const std::string& name);

class SafetensorsFile {
 public:
  // Maps the file read-only and validates it.
  static SafetensorsFile open(const std::string& path);
  // Validates a file image held in memory (tests, fuzzing); `name` stands for the path in errors.
  static SafetensorsFile from_bytes(std::vector<std::byte> bytes, const std::string& name);

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  size_t size() const { return header_->tensors.size(); }  // number of tensors
  // Tensor names in sorted order (the header's order carries no meaning).
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // Throws naming the tensor and the file when there is no such tensor.
  const SafetensorsTensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_->metadata; }

  // The tensor in dtype `want`. When the stored dtype is `want` and the data is aligned to its
  // element size, the result is a zero-copy view into the mapping, which it keeps alive; such a
  // view is READ-ONLY (the mapping is PROT_READ: writing through it faults) and aligned to its
  // element size only, not to kTensorAlignment. Otherwise the result is a fresh converted copy
  // (64-byte aligned, counted in peak memory). Conversions: F64/F32/F16/BF16 -> f32/bf16/f16;
  // F8_E4M3 (torch.float8_e4m3fn) -> f32/bf16/f16, exact; I64/I32/I16/I8/U8/BOOL -> i64 or a float
  // dtype. Anything else (U16, U32, U64, F8_E5M2, a float stored and i64 wanted, more dims than
  // Shape supports) throws naming the tensor and the file.
  Tensor read(const std::string& name, DType want) const;
  // Whether read(name, want) returns a view rather than a copy.
  bool is_zero_copy(const std::string& name, DType want) const;

 private:
  SafetensorsFile(std::shared_ptr<const void> owner, const std::byte* base, uint64_t size,
                  std::string path);

  std::shared_ptr<const void> owner_;  // the mapping (or buffer); views share it
  const std::byte* base_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
  std::shared_ptr<const SafetensorsHeader> header_;  // shared: copies of a file are cheap
};

}  // namespace paradiff
