#include "paradiff/engine/placement_plan.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>

#include "paradiff/core/error.h"
#include "paradiff/engine/disk_weights_check.h"
#include "paradiff/io/checkpoint.h"
#include "paradiff/io/json_config.h"
#include "paradiff/models/clip/clip_module_tree.h"
#include "paradiff/models/flux/flux_config.h"
#include "paradiff/models/qwen2_5_vl/qwen2_5_vl_module_tree.h"
#include "paradiff/models/qwen_image/qwen_image_config.h"
#include "paradiff/models/t5/t5_module_tree.h"
#include "paradiff/models/vae/placed_vae_decoder.h"
#include "paradiff/models/vae/vae_module_tree.h"
#include "paradiff/models/vae_qwen_image/placed_qwen_image_vae_decoder.h"
#include "paradiff/models/vae_qwen_image/qwen_image_vae_module_tree.h"
#include "paradiff/parallel/placement/stage_assignment.h"
#include "paradiff/pipeline/component_module_tree.h"
#include "paradiff/pipeline/model_index.h"

namespace paradiff::engine {

namespace {

SafetensorsDType placement_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return SafetensorsDType::F32;
    case DType::BF16:
      return SafetensorsDType::BF16;
    default:
      throw Error(str_cat("placement: dtype must be fp32 or bf16, got ", dtype_name(dtype)));
  }
}

parallel::MaxMemory default_budget(int world_size, int local_ranks) {
  const int64_t per_rank = parallel::default_rank_budget(
      parallel::available_host_memory(), local_ranks > 0 ? local_ranks : world_size);
  std::vector<std::pair<parallel::DeviceKey, int64_t>> entries;
  for (int r = 0; r < world_size; ++r) entries.emplace_back(parallel::DeviceKey::rank(r), per_rank);
  return parallel::MaxMemory(std::move(entries));
}

// VAE downsampling x FLUX's 2x2 patching: image tokens per side = size / (vae_scale * 2).
int64_t image_tokens(const pipeline::ModelIndex& index, const PlacementOptions& o) {
  int64_t vae_scale = 8;
  const std::string vae_config = index.folder + "/vae/config.json";
  if (std::filesystem::exists(vae_config)) {
    const auto blocks = JsonConfig::load(vae_config).get_int_list("block_out_channels", {});
    if (!blocks.empty()) vae_scale = int64_t{1} << (blocks.size() - 1);
  }
  const int64_t patch = vae_scale * 2;
  return (o.height / patch) * (o.width / patch);
}

nlohmann::ordered_json bytes_json(const std::vector<std::pair<parallel::DeviceKey, int64_t>>& v) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [device, bytes] : v) out[device.str()] = bytes;
  return out;
}

}  // namespace

PlacementPlan plan_placement(const PlacementOptions& o) {
  PARADIFF_CHECK(o.world_size >= 1, "--world-size must be >= 1, got ", o.world_size);
  PARADIFF_CHECK(o.height > 0 && o.width > 0 && o.text_tokens > 0,
                 "placement: height, width and text tokens must be positive");
  PlacementPlan plan;
  plan.options = o;
  const SafetensorsDType dtype = placement_dtype(o.dtype);
  // The cheap checks first: a bad budget or strategy is refused before any header is read.
  plan.user_set_max_memory = !o.max_memory.empty();
  plan.max_memory = plan.user_set_max_memory
                        ? parallel::MaxMemory::parse(o.max_memory, o.world_size)
                        : default_budget(o.world_size, o.local_ranks);
  if (!o.device_map.empty() && o.device_map != "balanced" && o.device_map != "cpu")
    parallel::compute_pipeline_device_map(o.device_map, {}, plan.max_memory);  // throws diffusers'
  const pipeline::ModelIndex index = pipeline::ModelIndex::load(o.model);
  // The variant a component's files are read in: --variant where it has them, as loading does.
  auto variant_of = [&](const std::string& folder) {
    return !o.variant.empty() && Checkpoint::folder_has_variant(folder, o.variant) ? o.variant
                                                                                   : std::string();
  };
  // A map file's "disk" units must be readable where they are streamed from: checked before any
  // header is read (a strategy's map is checked once computed, below).
  const bool map_file =
      o.transformer_device_map.size() > 5 && o.transformer_device_map.ends_with(".json");
  if (map_file && index.components.count("transformer") != 0)
    check_disk_weights_readable(
        index.folder + "/transformer", parallel::read_device_map_file(o.transformer_device_map),
        "--transformer-device-map", "at every step", variant_of(index.folder + "/transformer"));
  for (const auto& [component, strategy, flag] :
       {std::tuple{"text_encoder_2", &o.text_encoder_2_device_map, "--text-encoder-2-device-map"},
        std::tuple{"text_encoder", &o.text_encoder_device_map, "--text-encoder-device-map"}})
    if (strategy->size() > 5 && strategy->ends_with(".json") &&
        index.components.count(component) != 0)
      check_disk_weights_readable(index.folder + "/" + component,
                                  parallel::read_device_map_file(*strategy), flag,
                                  "at every encode", variant_of(index.folder + "/" + component));
  plan.components = pipeline::component_sizes(index, dtype, o.variant);

  if (!o.device_map.empty()) {
    // With a model-level map the transformer is placed by it, so the deal leaves it out (the
    // text encoders and the VAE are dealt, as diffusers deals a pipeline loaded without it).
    std::vector<parallel::ComponentSize> dealt;
    for (const auto& c : plan.components)
      if ((o.transformer_device_map.empty() || c.name != "transformer") &&
          (o.text_encoder_2_device_map.empty() || c.name != "text_encoder_2") &&
          (o.text_encoder_device_map.empty() || c.name != "text_encoder"))
        dealt.push_back(c);
    plan.pipeline = parallel::compute_pipeline_device_map(o.device_map, dealt, plan.max_memory);
  }

  std::map<parallel::DeviceKey, int64_t> per_rank;
  if (plan.pipeline)
    for (const auto& [component, device] : plan.pipeline->hf_device_map)
      for (const auto& c : plan.components)
        if (c.name == component) per_rank[device] += c.bytes;

  if (!o.transformer_device_map.empty()) {
    const auto t = index.components.find("transformer");
    const std::string cls = t == index.components.end() ? "" : t->second.class_name;
    PARADIFF_CHECK(cls == "FluxTransformer2DModel" || cls == "QwenImageTransformer2DModel",
                   "--transformer-device-map: model-level placement is implemented for "
                   "FluxTransformer2DModel and QwenImageTransformer2DModel; ",
                   o.model, "'s transformer is ", cls.empty() ? std::string("absent") : cls);
    const parallel::ModuleTree tree =
        pipeline::component_module_tree(index, "transformer", o.variant);
    parallel::SizeOptions sizes;
    sizes.dtype = dtype;
    // With a pipeline deal as well, the transformer's layers fill what the dealt components left
    // of each rank's budget, so that no rank holds more than max_memory in all.
    parallel::MaxMemory budget = plan.max_memory;
    for (const auto& [device, bytes] : per_rank)
      if (budget.contains(device))
        budget.set(device, std::max<int64_t>(0, budget.at(device) - bytes));
    plan.transformer = parallel::place_model(tree, o.transformer_device_map, budget, o.world_size,
                                             sizes, plan.user_set_max_memory);
    if (!map_file)
      check_disk_weights_readable(index.folder + "/transformer", plan.transformer->device_map,
                                  "--transformer-device-map", "at every step",
                                  variant_of(index.folder + "/transformer"));
    for (const auto& [device, bytes] : plan.transformer->bytes.per_device)
      per_rank[device] += bytes;
    const std::string config_path = index.folder + "/transformer/config.json";
    parallel::ActivationShape shape;
    shape.tokens = image_tokens(index, o) + o.text_tokens;
    if (cls == "FluxTransformer2DModel") {
      const auto config = models::flux::FluxTransformerConfig::load(config_path);
      shape.width = config.inner_dim();
      shape.output_width = config.output_channels();
    } else {
      const auto config = models::qwen_image::QwenImageTransformerConfig::load(config_path);
      shape.width = config.inner_dim();
      shape.output_width = config.output_channels();
    }
    shape.element_bytes = 4;  // the residual stream is fp32 in both compute dtypes
    plan.traffic = parallel::step_traffic(tree, plan.transformer->device_map, shape);
    // The output returns for the image tokens only.
    for (auto& b : plan.traffic->boundaries)
      if (b.before.empty()) {
        plan.traffic->bytes_per_step -= b.bytes;
        b.bytes = image_tokens(index, o) * shape.output_width * shape.element_bytes;
        plan.traffic->bytes_per_step += b.bytes;
      }
  }
  // The text encoders' layers fill what the deal and the transformer left of each rank's budget.
  auto place_encoder = [&](const std::string& component, const std::string& strategy,
                           const char* flag) -> std::optional<parallel::ModelPlacement> {
    if (strategy.empty()) return std::nullopt;
    const auto t = index.components.find(component);
    const std::string cls = t == index.components.end() ? "" : t->second.class_name;
    const std::string folder = index.folder + "/" + component;
    // "disk" units are streamed from the component's own files: a map file's were checked
    // readable before any header was read (above), a strategy's once computed (below).
    const bool encoder_map_file = strategy.size() > 5 && strategy.ends_with(".json");
    std::optional<parallel::ModuleTree> tree;
    // T5's tree is the model as transformers loads it (shared and encoder.embed_tokens one
    // tensor), so its bytes are the file's, where component_bytes counts diffusers' untied meta
    // model.
    if (component == "text_encoder_2" && cls == "T5EncoderModel")
      tree = models::t5::t5_encoder_module_tree(folder, variant_of(folder));
    if (component == "text_encoder" && cls == "CLIPTextModel")
      tree = models::clip::clip_text_module_tree(folder, variant_of(folder));
    if (component == "text_encoder" && cls == "Qwen2_5_VLForConditionalGeneration")
      tree = models::qwen2_5_vl::qwen2_5_vl_module_tree(folder, variant_of(folder));
    PARADIFF_CHECK(
        tree.has_value(), flag, ": model-level placement of ", component, " is implemented for ",
        component == "text_encoder" ? "CLIPTextModel and Qwen2_5_VLForConditionalGeneration"
                                    : "T5EncoderModel",
        "; ", o.model, "'s ", component, " is ", cls.empty() ? std::string("absent") : cls);
    parallel::SizeOptions sizes;
    sizes.dtype = dtype;
    parallel::MaxMemory budget = plan.max_memory;
    for (const auto& [device, bytes] : per_rank)
      if (budget.contains(device))
        budget.set(device, std::max<int64_t>(0, budget.at(device) - bytes));
    auto placed = parallel::place_model(*tree, strategy, budget, o.world_size, sizes,
                                        plan.user_set_max_memory);
    if (!encoder_map_file)
      check_disk_weights_readable(folder, placed.device_map, flag, "at every encode",
                                  variant_of(folder));
    for (const auto& [device, bytes] : placed.bytes.per_device) per_rank[device] += bytes;
    return placed;
  };
  plan.text_encoder_2 =
      place_encoder("text_encoder_2", o.text_encoder_2_device_map, "--text-encoder-2-device-map");
  plan.text_encoder =
      place_encoder("text_encoder", o.text_encoder_device_map, "--text-encoder-device-map");
  if (!o.vae_device_map.empty()) {
    PARADIFF_CHECK(o.device_map.empty(),
                   "--vae-device-map with --device-map balanced is not implemented yet (the deal "
                   "places the VAE whole)");
    const auto v = index.components.find("vae");
    const std::string cls = v == index.components.end() ? "" : v->second.class_name;
    const bool qwen = cls == "AutoencoderKLQwenImage";
    PARADIFF_CHECK(cls == "AutoencoderKL" || qwen,
                   "--vae-device-map: model-level placement of the VAE is implemented for "
                   "AutoencoderKL and AutoencoderKLQwenImage; ",
                   o.model, "'s vae is ", cls.empty() ? std::string("absent") : cls);
    const std::string folder = index.folder + "/vae";
    const std::string config_path = models::model_config_path(folder, "vae folder");
    const parallel::ModuleTree tree =
        qwen ? models::vae_qwen_image::autoencoder_kl_qwen_image_module_tree(folder,
                                                                             variant_of(folder))
             : models::vae::autoencoder_kl_module_tree(folder, variant_of(folder));
    parallel::SizeOptions sizes;
    sizes.dtype = dtype;
    plan.vae = parallel::place_model(tree, o.vae_device_map, plan.max_memory, o.world_size, sizes,
                                     plan.user_set_max_memory);
    // The decoder runs by units (models/vae/placed_vae_decoder.h,
    // models/vae_qwen_image/placed_qwen_image_vae_decoder.h): a map that splits one (an
    // Attention's projections over two devices, as accelerate may; any residual block of
    // AutoencoderKLQwenImage, which declares no no-split modules) is refused here, before any
    // weight is read, naming the unit.
    const std::vector<std::string> units =
        qwen ? models::vae_qwen_image::PlacedQwenImageVaeDecoder::execution_units(
                   models::vae_qwen_image::AutoencoderKLQwenImageConfig::load(config_path))
             : models::vae::PlacedVaeDecoder::execution_units(
                   models::vae::AutoencoderKLConfig::from_json(JsonConfig::load(config_path)));
    parallel::StageAssignment(plan.vae->device_map, units, tree.state_dict_names(), o.world_size);
    check_disk_weights_readable(folder, plan.vae->device_map, "--vae-device-map", "at every step",
                                variant_of(folder));
    for (const auto& [device, bytes] : plan.vae->bytes.per_device) per_rank[device] += bytes;
  }
  plan.bytes_per_rank.assign(per_rank.begin(), per_rank.end());
  if (!o.hosts.empty()) {
    PARADIFF_CHECK(static_cast<int>(o.hosts.size()) == o.world_size, "placement: ", o.hosts.size(),
                   " host names for ", o.world_size, " ranks");
    std::map<std::string, int64_t> per_host;
    for (const auto& host : o.hosts) per_host[host] += 0;
    for (const auto& [device, bytes] : plan.bytes_per_rank)
      if (device.is_rank()) per_host[o.hosts[static_cast<size_t>(device.rank_index())]] += bytes;
    plan.bytes_per_host.assign(per_host.begin(), per_host.end());
  }
  return plan;
}

nlohmann::ordered_json placement_plan_to_json(const PlacementPlan& plan) {
  nlohmann::ordered_json out;
  out["model"] = plan.options.model;
  out["world_size"] = plan.options.world_size;
  out["dtype"] = dtype_name(plan.options.dtype);
  nlohmann::ordered_json budget = bytes_json(plan.max_memory.entries());
  out["max_memory"] = budget;
  out["max_memory_source"] = plan.user_set_max_memory ? "--max-memory" : "host memory shared";
  out["pipeline"] = plan.pipeline ? parallel::pipeline_map_to_json(*plan.pipeline)
                                  : nlohmann::ordered_json(nullptr);
  out["transformer"] = plan.transformer ? parallel::device_map_to_json(plan.transformer->device_map)
                                        : nlohmann::ordered_json(nullptr);
  out["text_encoder"] = plan.text_encoder
                            ? parallel::device_map_to_json(plan.text_encoder->device_map)
                            : nlohmann::ordered_json(nullptr);
  out["text_encoder_2"] = plan.text_encoder_2
                              ? parallel::device_map_to_json(plan.text_encoder_2->device_map)
                              : nlohmann::ordered_json(nullptr);
  nlohmann::ordered_json components = nlohmann::ordered_json::object();
  for (const auto& c : plan.components) components[c.name] = c.bytes;
  out["component_bytes"] = components;
  out["bytes_per_rank"] = bytes_json(plan.bytes_per_rank);
  if (!plan.bytes_per_host.empty()) {
    nlohmann::ordered_json hosts = nlohmann::ordered_json::object();
    for (const auto& [host, bytes] : plan.bytes_per_host) hosts[host] = bytes;
    out["bytes_per_host"] = hosts;
  }
  if (plan.transformer) {
    const auto& t = *plan.transformer;
    out["transformer_bytes_per_rank"] = bytes_json(t.bytes.per_device);
    out["transformer_max_memory_balanced"] = bytes_json(t.max_memory.entries());
    out["largest_layer"] = {{"bytes", t.largest_layer_bytes}, {"modules", t.largest_layer_names}};
    if (!t.warnings.empty()) out["warnings"] = t.warnings;
  }
  if (plan.vae) {
    out["vae"] = parallel::device_map_to_json(plan.vae->device_map);
    out["vae_bytes_per_rank"] = bytes_json(plan.vae->bytes.per_device);
  }
  for (const auto& [name, placed] : {std::pair{"text_encoder", &plan.text_encoder},
                                     std::pair{"text_encoder_2", &plan.text_encoder_2}}) {
    if (!*placed) continue;
    out[str_cat(name, "_bytes_per_rank")] = bytes_json((*placed)->bytes.per_device);
    out[str_cat(name, "_max_memory_balanced")] = bytes_json((*placed)->max_memory.entries());
  }
  if (plan.traffic) {
    nlohmann::ordered_json boundaries = nlohmann::ordered_json::array();
    for (const auto& b : plan.traffic->boundaries)
      boundaries.push_back({{"after", b.after},
                            {"before", b.before.empty() ? "(output)" : b.before},
                            {"from", b.from},
                            {"to", b.to},
                            {"bytes", b.bytes}});
    out["step_traffic"] = {{"height", plan.options.height},
                           {"width", plan.options.width},
                           {"text_tokens", plan.options.text_tokens},
                           {"boundaries", boundaries},
                           {"bytes_per_step", plan.traffic->bytes_per_step}};
  }
  return out;
}

}  // namespace paradiff::engine
