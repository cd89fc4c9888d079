#include "paradiff/io/safetensors_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"

namespace paradiff {

namespace {

using nlohmann::json;

// The header (length prefix included) and the tensors in file order.
struct Layout {
  std::string prefix;
  std::vector<const Tensor*> order;
};

Layout plan(const std::map<std::string, Tensor>& tensors,
            const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<const std::string*, const Tensor*>> entries;
  for (const auto& [name, tensor] : tensors) {
    PARADIFF_CHECK(name != "__metadata__",
                   "safetensors: \"__metadata__\" is reserved and cannot name a tensor");
    PARADIFF_CHECK(tensor.defined(), "safetensors: tensor '", name, "' is undefined");
    entries.emplace_back(&name, &tensor);
  }
  // Larger elements first keeps every tensor aligned to its element size after an 8-aligned start.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second->dtype()) > dtype_size(b.second->dtype());
  });

  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Layout layout;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : entries) {
    const uint64_t end = offset + tensor->nbytes();
    header[*name] = {{"dtype", safetensors_dtype_name(safetensors_dtype(tensor->dtype()))},
                     {"shape", tensor->shape().to_vector()},
                     {"data_offsets", {offset, end}}};
    offset = end;
    layout.order.push_back(tensor);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the reference writer pads with spaces too
  const uint64_t length = text.size();
  layout.prefix.resize(8);
  std::memcpy(layout.prefix.data(), &length, 8);  // little-endian, as the format requires
  layout.prefix += text;
  return layout;
}

}  // namespace

std::vector<std::byte> serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                             const std::map<std::string, std::string>& metadata) {
  const Layout layout = plan(tensors, metadata);
  size_t total = layout.prefix.size();
  for (const Tensor* t : layout.order) total += t->nbytes();
  std::vector<std::byte> out(total);
  std::memcpy(out.data(), layout.prefix.data(), layout.prefix.size());
  size_t at = layout.prefix.size();
  for (const Tensor* t : layout.order) {
    if (t->nbytes()) std::memcpy(out.data() + at, t->raw_data(), t->nbytes());
    at += t->nbytes();
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const Layout layout = plan(tensors, metadata);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  PARADIFF_CHECK(file != nullptr, path, ": cannot open for writing: ", std::strerror(errno));
  bool ok =
      std::fwrite(layout.prefix.data(), 1, layout.prefix.size(), file) == layout.prefix.size();
  for (const Tensor* t : layout.order)
    if (ok && t->nbytes()) ok = std::fwrite(t->raw_data(), 1, t->nbytes(), file) == t->nbytes();
  int err = ok ? 0 : errno;
  if (std::fclose(file) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(path.c_str());
    throw Error(str_cat(path, ": cannot write: ", std::strerror(err)));
  }
}

}  // namespace paradiff
