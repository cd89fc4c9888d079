#include "paradiff/models/clip/clip_text_config.h"

#include <cmath>

#include "paradiff/core/error.h"

namespace paradiff::models::clip {

namespace {
constexpr int64_t kMaxSize = int64_t{1} << 20;
}

CLIPTextConfig CLIPTextConfig::from_json(const JsonConfig& json) {
  PARADIFF_CHECK(!json.has("text_config"), json.name(),
                 ": this is a full CLIPModel config (it has 'text_config'); a CLIPTextModel "
                 "folder is needed, such as FluxPipeline's text_encoder/");
  CLIPTextConfig c;
  c.vocab_size = json.get_int("vocab_size", c.vocab_size, 1, int64_t{1} << 31);
  c.hidden_size = json.get_int("hidden_size", c.hidden_size, 1, kMaxSize);
  c.intermediate_size = json.get_int("intermediate_size", c.intermediate_size, 1, kMaxSize);
  c.num_hidden_layers = json.get_int("num_hidden_layers", c.num_hidden_layers, 0, 10000);
  c.num_attention_heads = json.get_int("num_attention_heads", c.num_attention_heads, 1, 4096);
  c.max_position_embeddings =
      json.get_int("max_position_embeddings", c.max_position_embeddings, 1, kMaxSize);
  c.layer_norm_eps = json.get_float("layer_norm_eps", c.layer_norm_eps, 0.0, 1.0);
  c.eos_token_id = json.get_int("eos_token_id", c.eos_token_id, 0, int64_t{1} << 31);
  const std::string act = json.get_string("hidden_act", "quick_gelu");
  if (act == "quick_gelu") {
    c.hidden_act = ClipActivation::QuickGelu;
  } else if (act == "gelu") {
    c.hidden_act = ClipActivation::Gelu;
  } else if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
    c.hidden_act = ClipActivation::GeluTanh;
  } else if (act == "relu") {
    c.hidden_act = ClipActivation::Relu;
  } else if (act == "silu" || act == "swish") {
    c.hidden_act = ClipActivation::Silu;
  } else {
    throw Error(str_cat(json.name(),
                        ": config key 'hidden_act' must be one of quick_gelu, gelu, "
                        "gelu_new, gelu_pytorch_tanh, relu, silu, swish; got \"",
                        act, "\""));
  }
  c.validate(json.name());
  return c;
}

CLIPTextConfig CLIPTextConfig::load(const std::string& config_path) {
  return from_json(JsonConfig::load(config_path));
}

void CLIPTextConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(hidden_size % num_attention_heads == 0, where, ": hidden_size (", hidden_size,
                 ") must be a multiple of num_attention_heads (", num_attention_heads, ")");
  PARADIFF_CHECK(std::isfinite(layer_norm_eps) && layer_norm_eps >= 0, where,
                 ": layer_norm_eps must be a finite number >= 0, got ", layer_norm_eps);
}

}  // namespace paradiff::models::clip
