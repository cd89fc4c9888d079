#include "paradiff/models/t5/t5_config.h"

#include <algorithm>
#include <cmath>

#include "paradiff/core/error.h"

namespace paradiff::models::t5 {

namespace {
constexpr int64_t kMaxSize = int64_t{1} << 20;
}

T5Config T5Config::from_json(const JsonConfig& json) {
  T5Config c;
  c.vocab_size = json.get_int("vocab_size", c.vocab_size, 1, int64_t{1} << 31);
  c.d_model = json.get_int("d_model", c.d_model, 1, kMaxSize);
  c.d_kv = json.get_int("d_kv", c.d_kv, 1, kMaxSize);
  c.d_ff = json.get_int("d_ff", c.d_ff, 1, kMaxSize);
  c.num_layers = json.get_int("num_layers", c.num_layers, 0, 10000);
  c.num_heads = json.get_int("num_heads", c.num_heads, 1, 4096);
  c.relative_attention_num_buckets =
      json.get_int("relative_attention_num_buckets", c.relative_attention_num_buckets, 1, 1 << 16);
  c.relative_attention_max_distance = json.get_int("relative_attention_max_distance",
                                                   c.relative_attention_max_distance, 1, kMaxSize);
  c.layer_norm_epsilon = json.get_float("layer_norm_epsilon", c.layer_norm_epsilon, 0.0, 1.0);
  PARADIFF_CHECK(!json.get_bool("is_decoder", false), json.name(),
                 ": 'is_decoder' is true: this is a T5 decoder config, not an encoder");

  const std::string proj = json.get_string("feed_forward_proj", "relu");
  std::string act = proj;
  if (proj.rfind("gated-", 0) == 0) {
    c.gated = true;
    act = proj.substr(6);
  }
  if (act == "relu") {
    c.activation = T5Activation::Relu;
  } else if (act == "gelu") {
    // transformers maps "gated-gelu" to gelu_new (tanh) for backward compatibility; a plain
    // "gelu" stays the exact one.
    c.activation = c.gated ? T5Activation::GeluTanh : T5Activation::Gelu;
  } else if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
    c.activation = T5Activation::GeluTanh;
  } else if (act == "silu" || act == "swish") {
    c.activation = T5Activation::Silu;
  } else {
    throw Error(str_cat(json.name(),
                        ": config key 'feed_forward_proj' must be \"ACT\" or "
                        "\"gated-ACT\" with ACT one of relu, gelu, gelu_new, "
                        "gelu_pytorch_tanh, silu, swish; got \"",
                        proj, "\""));
  }
  c.validate(json.name());
  return c;
}

T5Config T5Config::load(const std::string& config_path) {
  return from_json(JsonConfig::load(config_path));
}

void T5Config::validate(const std::string& where) const {
  PARADIFF_CHECK(relative_attention_num_buckets >= 4, where,
                 ": relative_attention_num_buckets must be at least 4, got ",
                 relative_attention_num_buckets);
  PARADIFF_CHECK(relative_attention_max_distance > relative_attention_num_buckets / 4, where,
                 ": relative_attention_max_distance (", relative_attention_max_distance,
                 ") must exceed relative_attention_num_buckets / 4 (",
                 relative_attention_num_buckets / 4, ")");
  PARADIFF_CHECK(inner_dim() <= kMaxSize, where, ": num_heads x d_kv = ", inner_dim(),
                 " is too large");
  PARADIFF_CHECK(std::isfinite(layer_norm_epsilon) && layer_norm_epsilon >= 0, where,
                 ": layer_norm_epsilon must be a finite number >= 0");
}

int64_t relative_position_bucket(int64_t relative_position, int64_t num_buckets,
                                 int64_t max_distance) {
  // Bidirectional: half the buckets for keys after the query.
  num_buckets /= 2;
  int64_t bucket = relative_position > 0 ? num_buckets : 0;
  const int64_t n = std::abs(relative_position);
  const int64_t max_exact = num_buckets / 2;
  if (n < max_exact) return bucket + n;
  // The rest grows logarithmically up to max_distance. PyTorch evaluates
  // log(n / max_exact) / log(max_distance / max_exact) * (num_buckets - max_exact) in float32
  // (the Python float divisor rounded to float32) and truncates.
  const float ratio = static_cast<float>(n) / static_cast<float>(max_exact);
  const auto divisor = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / divisor * static_cast<float>(num_buckets - max_exact);
  const int64_t large = max_exact + static_cast<int64_t>(scaled);
  return bucket + std::min(large, num_buckets - 1);
}

}  // namespace paradiff::models::t5
