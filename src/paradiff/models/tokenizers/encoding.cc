#include "paradiff/models/tokenizers/encoding.h"

#include <algorithm>

#include "paradiff/core/error.h"

namespace paradiff::models::tokenizers {

Encoding make_encoding(std::vector<int64_t> tokens, const EncodingLayout& layout,
                       int64_t max_length) {
  const auto specials = static_cast<int64_t>(layout.prefix.size() + layout.suffix.size());
  PARADIFF_CHECK(max_length >= specials, "max_length ", max_length,
                 " leaves no room for the tokenizer's ", specials, " special token(s)");
  Encoding e;
  const int64_t room = max_length - specials;
  if (static_cast<int64_t>(tokens.size()) > room) {
    e.truncated_ids.assign(tokens.begin() + room, tokens.end());
    tokens.resize(static_cast<size_t>(room));
  }
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(max_length));
  ids.insert(ids.end(), layout.prefix.begin(), layout.prefix.end());
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  ids.insert(ids.end(), layout.suffix.begin(), layout.suffix.end());
  e.length = static_cast<int64_t>(ids.size());
  const auto pad = static_cast<size_t>(max_length - e.length);
  if (layout.pad_left)
    ids.insert(ids.begin(), pad, layout.pad_id);
  else
    ids.insert(ids.end(), pad, layout.pad_id);
  e.input_ids = std::move(ids);
  return e;
}

Tensor stack_input_ids(const std::vector<Encoding>& encodings) {
  PARADIFF_CHECK(!encodings.empty(), "no encodings to stack");
  const auto length = static_cast<int64_t>(encodings.front().input_ids.size());
  Tensor out = Tensor::empty({static_cast<int64_t>(encodings.size()), length}, DType::I64);
  int64_t* p = out.data<int64_t>();
  for (const Encoding& e : encodings) {
    PARADIFF_CHECK(static_cast<int64_t>(e.input_ids.size()) == length,
                   "encodings to stack must have one length: ", e.input_ids.size(), " vs ", length);
    p = std::copy(e.input_ids.begin(), e.input_ids.end(), p);
  }
  return out;
}

}  // namespace paradiff::models::tokenizers
