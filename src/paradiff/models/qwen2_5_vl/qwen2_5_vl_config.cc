#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "paradiff/core/error.h"

namespace paradiff::models::qwen2_5_vl {

namespace {

constexpr int64_t kMaxSize = int64_t{1} << 20;

// A nested object of `parent` as a config of its own; messages name the parent and the key.
JsonConfig nested(const JsonConfig& parent, const std::string& key) {
  const nlohmann::json& value = parent.root().at(key);
  PARADIFF_CHECK(value.is_object(), parent.name(), ": config key '", key,
                 "' must be an object, got ", json_excerpt(value));
  return JsonConfig::parse(value.dump(), str_cat(parent.name(), ": ", key));
}

}  // namespace

Qwen2_5_VLTextConfig Qwen2_5_VLTextConfig::from_json(const JsonConfig& json) {
  const std::string model_type = json.get_string("model_type", "qwen2_5_vl");
  PARADIFF_CHECK(model_type == "qwen2_5_vl", json.name(), ": config key 'model_type' is \"",
                 model_type, "\"; a Qwen2_5_VLForConditionalGeneration config (\"qwen2_5_vl\") ",
                 "is needed, such as QwenImagePipeline's text_encoder/");
  // transformers 5 takes the text settings from text_config when there is one.
  const JsonConfig text = json.has("text_config") ? nested(json, "text_config") : json;

  Qwen2_5_VLTextConfig c;
  c.vocab_size = text.get_int("vocab_size", c.vocab_size, 1, int64_t{1} << 31);
  c.hidden_size = text.get_int("hidden_size", c.hidden_size, 1, kMaxSize);
  c.intermediate_size = text.get_int("intermediate_size", c.intermediate_size, 1, kMaxSize);
  c.num_hidden_layers = text.get_int("num_hidden_layers", c.num_hidden_layers, 0, 10000);
  c.num_attention_heads = text.get_int("num_attention_heads", c.num_attention_heads, 1, 4096);
  // Absent means transformers' default (8); null means as many as the query heads.
  const auto kv = text.root().find("num_key_value_heads");
  const bool kv_null = kv != text.root().end() && kv->is_null();
  c.num_key_value_heads = text.get_int(
      "num_key_value_heads", kv_null ? c.num_attention_heads : c.num_key_value_heads, 1, 4096);
  c.rms_norm_eps = text.get_float("rms_norm_eps", c.rms_norm_eps, 0.0, 1.0);

  const std::string act = text.get_string("hidden_act", "silu");
  PARADIFF_CHECK(act == "silu" || act == "swish", text.name(),
                 ": config key 'hidden_act' must be \"silu\" (Qwen2's SwiGLU MLP), got \"", act,
                 "\"");
  PARADIFF_CHECK(!text.get_bool("use_sliding_window", false), text.name(),
                 ": config key 'use_sliding_window' is true; sliding-window attention is not "
                 "supported (Qwen2.5-VL's checkpoints have it off)");
  for (const std::string& type : text.get_string_list("layer_types", {}))
    PARADIFF_CHECK(type == "full_attention", text.name(), ": config key 'layer_types' holds \"",
                   type, "\"; only \"full_attention\" layers are supported");
  if (const auto head_dim = text.optional_int("head_dim"))
    PARADIFF_CHECK(c.num_attention_heads * *head_dim == c.hidden_size, text.name(),
                   ": config key 'head_dim' is ", *head_dim,
                   "; Qwen2.5-VL's attention uses hidden_size / num_attention_heads = ",
                   c.hidden_size, " / ", c.num_attention_heads);

  // RoPE: "rope_scaling" (older files) or "rope_parameters" (transformers 5), theta inside it or
  // beside it.
  const double flat_theta = text.get_float("rope_theta", c.rope_theta);
  c.rope_theta = flat_theta;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!text.has(key)) continue;
    const JsonConfig rope = nested(text, key);
    std::string type = rope.get_string("rope_type", rope.get_string("type", "default"));
    PARADIFF_CHECK(type == "default" || type == "mrope", rope.name(), ": RoPE type \"", type,
                   "\" is not supported; Qwen2.5-VL uses \"default\" (also written \"mrope\")");
    c.rope_theta = rope.get_float("rope_theta", flat_theta);
    c.mrope_section = rope.get_int_list("mrope_section", c.mrope_section);
    break;
  }
  c.validate(text.name());
  return c;
}

Qwen2_5_VLTextConfig Qwen2_5_VLTextConfig::load(const std::string& config_path) {
  return from_json(JsonConfig::load(config_path));
}

void Qwen2_5_VLTextConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(vocab_size >= 1 && hidden_size >= 1 && intermediate_size >= 1 &&
                     num_hidden_layers >= 0 && num_attention_heads >= 1 && num_key_value_heads >= 1,
                 where, ": sizes must be positive");
  PARADIFF_CHECK(hidden_size % num_attention_heads == 0, where, ": hidden_size (", hidden_size,
                 ") must be a multiple of num_attention_heads (", num_attention_heads, ")");
  PARADIFF_CHECK(num_attention_heads % num_key_value_heads == 0, where, ": num_attention_heads (",
                 num_attention_heads, ") must be a multiple of num_key_value_heads (",
                 num_key_value_heads, ")");
  PARADIFF_CHECK(head_dim() % 2 == 0, where,
                 ": the head dim hidden_size / num_attention_heads = ", head_dim(),
                 " must be even for rotary embedding");
  PARADIFF_CHECK(std::isfinite(rms_norm_eps) && rms_norm_eps >= 0, where,
                 ": rms_norm_eps must be a finite number >= 0, got ", rms_norm_eps);
  PARADIFF_CHECK(std::isfinite(rope_theta) && rope_theta > 0, where,
                 ": rope_theta must be a finite number > 0, got ", rope_theta);
  int64_t sum = 0;
  for (int64_t s : mrope_section) {
    PARADIFF_CHECK(s >= 0, where, ": mrope_section entries must be >= 0, got ", s);
    sum += s;
  }
  PARADIFF_CHECK(mrope_section.size() == 3 && sum == head_dim() / 2, where,
                 ": mrope_section must be 3 entries summing to head_dim / 2 = ", head_dim() / 2,
                 ", got ", mrope_section.size(), " entries summing to ", sum);
}

}  // namespace paradiff::models::qwen2_5_vl
