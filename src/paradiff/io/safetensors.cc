#include "paradiff/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "paradiff/io/json_config.h"
#include "paradiff/kernels/fp8_e4m3.h"

namespace paradiff {

// The format is little-endian; so is every machine this engine targets.
static_assert(std::endian::native == std::endian::little,
              "safetensors reading assumes little-endian");

namespace {

using nlohmann::json;

struct DTypeRow {
  SafetensorsDType dtype;
  std::string_view name;
  size_t size;
};

constexpr DTypeRow kDTypes[] = {
    {SafetensorsDType::BOOL, "BOOL", 1},       {SafetensorsDType::U8, "U8", 1},
    {SafetensorsDType::I8, "I8", 1},           {SafetensorsDType::I16, "I16", 2},
    {SafetensorsDType::U16, "U16", 2},         {SafetensorsDType::I32, "I32", 4},
    {SafetensorsDType::U32, "U32", 4},         {SafetensorsDType::I64, "I64", 8},
    {SafetensorsDType::U64, "U64", 8},         {SafetensorsDType::F16, "F16", 2},
    {SafetensorsDType::BF16, "BF16", 2},       {SafetensorsDType::F32, "F32", 4},
    {SafetensorsDType::F64, "F64", 8},         {SafetensorsDType::F8_E4M3, "F8_E4M3", 1},
    {SafetensorsDType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeRow& row(SafetensorsDType dtype) {
  return kDTypes[static_cast<size_t>(dtype)];
}

std::string known_dtype_names() {
  std::string out;
  for (const DTypeRow& r : kDTypes) out += str_cat(out.empty() ? "" : ", ", r.name);
  return out;
}

// A tensor name as it appears in messages: quoted, escaped, cut if huge. (Not "quoted": ADL
// would pick std::quoted for a non-const std::string.)
std::string quote_name(const std::string& name) {
  return json_excerpt(json(name));
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += str_cat(i ? ", " : "", dims[i]);
  return out + "]";
}

// Streams the header's JSON events through a state machine that accepts exactly the safetensors
// layout: {"__metadata__": {str: str}, name: {"dtype": str, "shape": [uint...],
// "data_offsets": [uint, uint]}, ...}. Compared with parsing into a DOM first, memory stays
// proportional to the number of tensors whatever the header holds, nesting is bounded by
// construction, and duplicate keys (which a DOM would silently collapse) are seen.
class HeaderParser final : public nlohmann::json_sax<json> {
 public:
  HeaderParser(const std::string& name, uint64_t data_offset, uint64_t data_size)
      : name_(name), data_size_(data_size) {
    header_.data_offset = data_offset;
  }

  SafetensorsHeader finish() {
    check_coverage();
    return std::move(header_);
  }

  bool null() override { return scalar(json(nullptr)); }
  bool boolean(bool value) override { return scalar(json(value)); }
  bool number_integer(number_integer_t value) override {
    // nlohmann reports non-negative integers through number_unsigned, except "-0".
    if (value == 0) return number_unsigned(0);
    if (in_array()) fail(field_context(), " has a negative value ", value);
    return scalar(json(value));
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (!in_array()) return scalar(json(value));
    std::vector<uint64_t>& values = where_ == Where::Shape ? shape_ : offsets_;
    if (where_ == Where::Shape && values.size() == kMaxDims)
      fail(field_context(), " has more than ", kMaxDims, " dimensions");
    if (where_ == Where::Offsets && values.size() == 2)
      fail(field_context(), " has more than 2 values (expected [begin, end])");
    values.push_back(value);
    return true;
  }
  bool number_float(number_float_t value, const string_t& /*text*/) override {
    if (in_array()) fail(field_context(), " must hold non-negative integers, found ", json(value));
    return scalar(json(value));
  }
  bool string(string_t& value) override {
    if (where_ == Where::Metadata) {
      header_.metadata.emplace(key_, std::move(value));
      return true;
    }
    if (where_ == Where::Entry && field_ == "dtype") {
      const auto dtype = parse_safetensors_dtype(value);
      if (!dtype)
        fail("tensor ", quote_name(entry_), " has unknown dtype ", quote_name(value),
             " (known: ", known_dtype_names(), ")");
      dtype_ = *dtype;
      return true;
    }
    return scalar(json(value));
  }
  bool binary(binary_t& /*value*/) override { return fail("binary value in a JSON header"); }

  bool start_object(std::size_t /*elements*/) override {
    switch (where_) {
      case Where::Top:
        where_ = Where::Root;
        return true;
      case Where::Root:
        if (entry_ == "__metadata__") {
          where_ = Where::Metadata;
        } else {
          where_ = Where::Entry;
          seen_fields_ = 0;
          shape_.clear();
          offsets_.clear();
        }
        return true;
      default:
        return wrong_type("an object");
    }
  }
  bool key(string_t& key) override {
    switch (where_) {
      case Where::Root: {
        const bool repeated = key == "__metadata__" ? std::exchange(seen_metadata_, true)
                                                    : header_.tensors.count(key) > 0;
        if (repeated) fail("header lists ", quote_name(key), " twice (duplicate key)");
        entry_ = std::move(key);
        return true;
      }
      case Where::Metadata:
        if (header_.metadata.count(key))
          fail("__metadata__ lists key ", quote_name(key), " twice (duplicate key)");
        key_ = std::move(key);
        return true;
      case Where::Entry: {
        const int bit = key == "dtype" ? 1 : key == "shape" ? 2 : key == "data_offsets" ? 4 : 0;
        if (bit == 0)
          fail("tensor ", quote_name(entry_), " has unknown field ", quote_name(key),
               " (expected \"dtype\", \"shape\" and \"data_offsets\")");
        if (seen_fields_ & bit)
          fail("tensor ", quote_name(entry_), " lists field ", quote_name(key),
               " twice (duplicate key)");
        seen_fields_ |= bit;
        field_ = std::move(key);
        return true;
      }
      default:
        return fail("unexpected key ", quote_name(key));  // unreachable: keys only follow objects
    }
  }
  bool end_object() override {
    switch (where_) {
      case Where::Root:
        where_ = Where::Done;
        return true;
      case Where::Metadata:
        where_ = Where::Root;
        return true;
      case Where::Entry:
        add_entry();
        where_ = Where::Root;
        return true;
      default:
        return fail("unbalanced object");  // unreachable: the JSON parser balances them
    }
  }
  bool start_array(std::size_t /*elements*/) override {
    if (where_ == Where::Entry && field_ == "shape") {
      where_ = Where::Shape;
      return true;
    }
    if (where_ == Where::Entry && field_ == "data_offsets") {
      where_ = Where::Offsets;
      return true;
    }
    if (in_array()) fail(field_context(), " must hold non-negative integers, found an array");
    return wrong_type("an array");
  }
  bool end_array() override {
    if (where_ == Where::Offsets && offsets_.size() != 2)
      fail(field_context(), " must be [begin, end], found ", offsets_.size(), " value(s)");
    where_ = Where::Entry;
    return true;
  }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& e) override {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 1, column 9: ...".
    std::string_view what(e.what());
    const size_t close = what.find("] ");
    if (close != std::string_view::npos) what.remove_prefix(close + 2);
    return fail("header is not valid JSON: ", what);
  }

 private:
  // Where in the expected layout the next event lands.
  enum class Where { Top, Root, Metadata, Entry, Shape, Offsets, Done };
  // PyTorch's own limit on the number of dimensions; also bounds a hostile shape's memory.
  static constexpr size_t kMaxDims = 64;

  template <typename... Args>
  [[noreturn]] bool fail(Args&&... args) const {
    throw Error(str_cat(name_, ": ", std::forward<Args>(args)...));
  }

  bool in_array() const { return where_ == Where::Shape || where_ == Where::Offsets; }
  std::string field_context() const { return str_cat("tensor ", quote_name(entry_), " ", field_); }

  // A value of the wrong kind for its place; `found` describes it.
  bool wrong_type(const std::string& found) const {
    switch (where_) {
      case Where::Top:
        fail("header is ", found, ", expected a JSON object");
      case Where::Root:
        if (entry_ == "__metadata__") fail("__metadata__ must be an object, found ", found);
        fail("tensor ", quote_name(entry_), " must be an object, found ", found);
      case Where::Metadata:
        fail("__metadata__ value of ", quote_name(key_), " must be a string, found ", found);
      case Where::Entry:
        if (field_ == "dtype")
          fail("tensor ", quote_name(entry_), " dtype must be a string, found ", found);
        fail(field_context(), " must be an array, found ", found);
      case Where::Shape:
      case Where::Offsets:
        fail(field_context(), " must hold non-negative integers, found ", found);
      case Where::Done:
        break;
    }
    return fail("unexpected ", found, " after the header object");
  }

  bool scalar(const json& value) {
    // __metadata__: null is the reference implementation's "no metadata".
    if (where_ == Where::Root && entry_ == "__metadata__" && value.is_null()) return true;
    return wrong_type(json_excerpt(value));
  }

  void add_entry() {
    for (const auto& [bit, field] : {std::pair{1, "dtype"}, {2, "shape"}, {4, "data_offsets"}})
      if (!(seen_fields_ & bit))
        fail("tensor ", quote_name(entry_), " has no \"", field, "\" field");
    SafetensorsTensorInfo info;
    info.dtype = dtype_;
    uint64_t numel = 1;
    for (uint64_t d : shape_) {
      info.shape.push_back(static_cast<int64_t>(d));
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(numel, d, &numel))
        fail("tensor ", quote_name(entry_), " shape ", json(shape_).dump(),
             " has more elements than fit in 64 bits");
    }
    uint64_t nbytes = 0;
    if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, safetensors_dtype_size(dtype_), &nbytes))
      fail("tensor ", quote_name(entry_), " shape ", json(shape_).dump(),
           " has more bytes than fit in 64 bits");
    info.numel = static_cast<int64_t>(numel);
    info.begin = offsets_[0];
    info.end = offsets_[1];
    const std::string where =
        str_cat("tensor ", quote_name(entry_), " data_offsets [", info.begin, ", ", info.end, "]");
    if (info.begin > info.end) fail(where, " have begin after end");
    if (info.end - info.begin != nbytes)
      fail(where, " span ", info.end - info.begin, " bytes, but ", safetensors_dtype_name(dtype_),
           dims_string(info.shape), " needs ", nbytes, " bytes");
    if (info.end > data_size_)
      fail(where, " extend past the end of the data region (", data_size_,
           " bytes, from file offset ", header_.data_offset, ")");
    info.file_offset = header_.data_offset + info.begin;
    header_.tensors.emplace(entry_, std::move(info));
  }

  // The spans must tile the data region exactly: no overlap (two tensors sharing bytes), no hole
  // and no trailing bytes (data no tensor owns, where a damaged or crafted file hides things).
  void check_coverage() const {
    std::vector<std::pair<const std::string*, const SafetensorsTensorInfo*>> spans;
    for (const auto& [name, info] : header_.tensors) spans.emplace_back(&name, &info);
    std::sort(spans.begin(), spans.end(), [](const auto& a, const auto& b) {
      return std::pair(a.second->begin, a.second->end) < std::pair(b.second->begin, b.second->end);
    });
    uint64_t covered = 0;
    const std::string* previous = nullptr;
    for (const auto& [name, info] : spans) {
      if (info->begin < covered)
        fail("tensors ", quote_name(*previous), " (data_offsets ending at ", covered, ") and ",
             quote_name(*name), " (data_offsets [", info->begin, ", ", info->end, "]) overlap");
      if (info->begin > covered)
        fail("bytes [", covered, ", ", info->begin, ") of the data region belong to no tensor (",
             previous
                 ? str_cat("a hole between ", quote_name(*previous), " and ", quote_name(*name))
                 : str_cat("a hole before the first tensor, ", quote_name(*name)),
             ")");
      if (info->end > covered || previous == nullptr) previous = name;
      covered = std::max(covered, info->end);
    }
    if (covered != data_size_)
      fail("the data region is ", data_size_, " bytes but the tensors cover only ", covered, " (",
           data_size_ - covered, " trailing bytes)");
  }

  const std::string& name_;
  const uint64_t data_size_;
  SafetensorsHeader header_;
  Where where_ = Where::Top;
  bool seen_metadata_ = false;
  std::string entry_;  // the root key being read: a tensor name or "__metadata__"
  std::string key_;    // the __metadata__ key being read
  std::string field_;  // the tensor field being read: dtype, shape or data_offsets
  int seen_fields_ = 0;
  SafetensorsDType dtype_ = SafetensorsDType::F32;
  std::vector<uint64_t> shape_;
  std::vector<uint64_t> offsets_;
};

// Owns a read-only mapping of a whole file.
struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) ::munmap(addr, size);
  }
};

// Element `i` of stored data, without assuming the data is aligned for T.
template <typename T>
T load(const std::byte* data, int64_t i) {
  T value;
  std::memcpy(&value, data + static_cast<size_t>(i) * sizeof(T), sizeof(T));
  return value;
}

// Calls fn(tag) with a value of the C++ type of an integer safetensors dtype; false otherwise.
template <typename Fn>
bool dispatch_stored_int(SafetensorsDType dtype, Fn&& fn) {
  switch (dtype) {
    case SafetensorsDType::BOOL:
    case SafetensorsDType::U8:
      fn(uint8_t{});
      return true;
    case SafetensorsDType::I8:
      fn(int8_t{});
      return true;
    case SafetensorsDType::I16:
      fn(int16_t{});
      return true;
    case SafetensorsDType::I32:
      fn(int32_t{});
      return true;
    case SafetensorsDType::I64:
      fn(int64_t{});
      return true;
    default:
      return false;
  }
}

bool is_stored_float(SafetensorsDType dtype) {
  return dtype == SafetensorsDType::F64 || dtype == SafetensorsDType::F32 ||
         dtype == SafetensorsDType::F16 || dtype == SafetensorsDType::BF16 ||
         dtype == SafetensorsDType::F8_E4M3;
}

// float8 e4m3 (torch.float8_e4m3fn) codes widened through their values (kernels/fp8_e4m3.h):
// exact in f32, bf16 and f16 alike (3 mantissa bits, magnitudes 2^-9 ... 448); NaN stays NaN.
template <typename D>
void widen_fp8_e4m3(const std::byte* src, D* out, int64_t count) {
  const std::array<float, 256>& values = kernels::fp8_e4m3_values();
  const auto* in = reinterpret_cast<const uint8_t*>(src);
#pragma omp parallel for schedule(static) if (count > (int64_t{1} << 16))
  for (int64_t i = 0; i < count; ++i) out[i] = from_float<D>(values[in[i]]);
}

bool can_convert(SafetensorsDType stored, DType want) {
  if (is_stored_float(stored)) return is_floating(want);
  return dispatch_stored_int(stored, [](auto) {});
}

// Converts `count` stored elements at `src` (any alignment) into `dst` (a fresh tensor's storage).
void convert_stored(const std::byte* src, SafetensorsDType stored, Tensor& dst, int64_t count) {
  const DType want = dst.dtype();
  const std::optional<DType> native = native_dtype(stored);
  if (native == want) {
    std::memcpy(dst.raw_data(), src, dst.nbytes());
  } else if (native && is_floating(*native)) {
    // The fast, vectorised conversions need aligned input: copy first when it is not.
    Tensor aligned;
    if (reinterpret_cast<uintptr_t>(src) % dtype_size(*native) != 0) {
      aligned = Tensor::empty(dst.shape(), *native);
      std::memcpy(aligned.raw_data(), src, aligned.nbytes());
      src = static_cast<const std::byte*>(aligned.raw_data());
    }
    convert_elements(src, *native, dst.raw_data(), want, count);
  } else if (stored == SafetensorsDType::F8_E4M3) {
    dispatch_dtype(want, [&](auto tag) {
      using D = decltype(tag);
      if constexpr (!std::is_same_v<D, int64_t>) widen_fp8_e4m3(src, dst.data<D>(), count);
    });
  } else if (stored == SafetensorsDType::F64) {
    dispatch_dtype(want, [&](auto tag) {
      using D = decltype(tag);
      D* out = dst.data<D>();
      for (int64_t i = 0; i < count; ++i)
        out[i] = from_float<D>(static_cast<float>(load<double>(src, i)));
    });
  } else {
    const bool is_bool = stored == SafetensorsDType::BOOL;
    dispatch_stored_int(stored, [&](auto stag) {
      using S = decltype(stag);
      dispatch_dtype(want, [&](auto dtag) {
        using D = decltype(dtag);
        D* out = dst.data<D>();
        for (int64_t i = 0; i < count; ++i) {
          int64_t v = static_cast<int64_t>(load<S>(src, i));
          if (is_bool) v = v != 0;
          if constexpr (std::is_same_v<D, int64_t>) {
            out[i] = v;
          } else {
            out[i] = from_float<D>(static_cast<float>(v));
          }
        }
      });
    });
  }
}

}  // namespace

std::string_view safetensors_dtype_name(SafetensorsDType dtype) {
  return row(dtype).name;
}
size_t safetensors_dtype_size(SafetensorsDType dtype) {
  return row(dtype).size;
}

std::optional<SafetensorsDType> parse_safetensors_dtype(std::string_view name) {
  for (const DTypeRow& r : kDTypes)
    if (r.name == name) return r.dtype;
  return std::nullopt;
}

std::optional<DType> native_dtype(SafetensorsDType dtype) {
  switch (dtype) {
    case SafetensorsDType::F32:
      return DType::F32;
    case SafetensorsDType::BF16:
      return DType::BF16;
    case SafetensorsDType::F16:
      return DType::F16;
    case SafetensorsDType::I64:
      return DType::I64;
    default:
      return std::nullopt;
  }
}

SafetensorsDType safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return SafetensorsDType::F32;
    case DType::BF16:
      return SafetensorsDType::BF16;
    case DType::F16:
      return SafetensorsDType::F16;
    case DType::I64:
      return SafetensorsDType::I64;
  }
  __builtin_unreachable();
}

std::string SafetensorsTensorInfo::describe() const {
  return str_cat(safetensors_dtype_name(dtype), dims_string(shape), " at bytes [", file_offset,
                 ", ", file_offset + nbytes(), ") of the file");
}

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file,
                                           const std::string& name) {
  const uint64_t size = file.size();
  PARADIFF_CHECK(size >= 8, name, ": not a safetensors file: expected at least 8 bytes (the ",
                 "header length), found ", size);
  uint64_t header_len;
  std::memcpy(&header_len, file.data(), 8);
  PARADIFF_CHECK(header_len <= kMaxSafetensorsHeaderBytes, name, ": header length ", header_len,
                 " exceeds the limit of ", kMaxSafetensorsHeaderBytes,
                 " bytes (a damaged file, or not a safetensors file)");
  PARADIFF_CHECK(header_len <= size - 8, name, ": header length ", header_len,
                 " extends past the end of the file: expected at most ", size - 8,
                 " bytes after the 8-byte length, the file is ", size, " bytes");
  const auto* text = reinterpret_cast<const char*>(file.data() + 8);
  // nlohmann's lexer reads a NUL byte as the end of input and would ignore what follows.
  const void* nul = std::memchr(text, 0, header_len);
  PARADIFF_CHECK(nul == nullptr, name, ": header is not valid JSON: NUL byte at file offset ",
                 8 + (static_cast<const char*>(nul) - text));
  HeaderParser parser(name, 8 + header_len, size - 8 - header_len);
  // Trailing whitespace is allowed: writers pad the header to align the data.
  json::sax_parse(text, text + header_len, &parser);
  return parser.finish();
}

SafetensorsFile::SafetensorsFile(std::shared_ptr<const void> owner, const std::byte* base,
                                 uint64_t size, std::string path)
    : owner_(std::move(owner)),
      base_(base),
      size_(size),
      path_(std::move(path)),
      header_(std::make_shared<const SafetensorsHeader>(
          parse_safetensors_header({base_, static_cast<size_t>(size_)}, path_))) {}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused as not regular.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  PARADIFF_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(str_cat(path, ": cannot stat: ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(str_cat(
        path, ": cannot open: ", S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file"));
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = static_cast<size_t>(st.st_size);
  if (mapping->size > 0) {  // mmap rejects length 0; the parser rejects the empty file
    void* addr = ::mmap(nullptr, mapping->size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    if (addr == MAP_FAILED) {
      ::close(fd);
      throw Error(str_cat(path, ": cannot map ", mapping->size, " bytes: ", std::strerror(err)));
    }
    mapping->addr = addr;
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  const auto* base = static_cast<const std::byte*>(mapping->addr);
  return SafetensorsFile(std::move(mapping), base, st.st_size, path);
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<std::byte> bytes, const std::string& name) {
  auto buffer = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  const std::byte* base = buffer->data();
  const uint64_t size = buffer->size();
  return SafetensorsFile(std::move(buffer), base, size, name);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_->tensors.size());
  for (const auto& entry : header_->tensors) out.push_back(entry.first);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return header_->tensors.count(name) > 0;
}

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = header_->tensors.find(name);
  PARADIFF_CHECK(it != header_->tensors.end(), path_, ": no tensor named ", quote_name(name),
                 " (the ", "file holds ", header_->tensors.size(), " tensors)");
  return it->second;
}

bool SafetensorsFile::is_zero_copy(const std::string& name, DType want) const {
  const SafetensorsTensorInfo& t = info(name);
  return native_dtype(t.dtype) == want &&
         reinterpret_cast<uintptr_t>(base_ + t.file_offset) % dtype_size(want) == 0;
}

Tensor SafetensorsFile::read(const std::string& name, DType want) const {
  const SafetensorsTensorInfo& t = info(name);
  PARADIFF_CHECK(can_convert(t.dtype, want), path_, ": cannot read tensor ", quote_name(name), " (",
                 safetensors_dtype_name(t.dtype), ") as ", dtype_name(want));
  Shape shape;
  try {
    shape = Shape(t.shape);
  } catch (const Error&) {
    rethrow_with_context(str_cat(path_, ": tensor ", quote_name(name)));
  }
  const std::byte* src = base_ + t.file_offset;
  if (is_zero_copy(name, want))
    return Tensor::from_external(const_cast<std::byte*>(src), shape, want, owner_);
  Tensor out = Tensor::empty(shape, want);
  convert_stored(src, t.dtype, out, t.numel);
  return out;
}

}  // namespace paradiff
