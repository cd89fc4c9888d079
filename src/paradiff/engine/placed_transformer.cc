#include "paradiff/engine/placed_transformer.h"

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "paradiff/core/error.h"
#include "paradiff/dist/host_names.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/engine/disk_weights_check.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/models/flux/flux_module_tree.h"
#include "paradiff/models/qwen_image/qwen_image_module_tree.h"

namespace paradiff::engine {

namespace {

using models::flux::FluxTransformer2DModel;
using models::qwen_image::QwenImageTransformer2DModel;

void write_config(const std::string& folder, const nlohmann::ordered_json& config) {
  std::ofstream out(folder + "/config.json");
  out << config.dump(2) << "\n";
  PARADIFF_CHECK(out.good(), folder, "/config.json: cannot write");
}

}  // namespace

parallel::ModelPlacement plan_transformer_placement(const std::string& folder,
                                                    const std::string& device_map,
                                                    const std::string& max_memory, int world_size,
                                                    int local_ranks, DType dtype) {
  PARADIFF_CHECK(dtype == DType::F32 || dtype == DType::BF16,
                 "placement: dtype must be fp32 or bf16, got ", dtype_name(dtype));
  const bool user_set = !max_memory.empty();
  parallel::MaxMemory budget;
  if (user_set) {
    budget = parallel::MaxMemory::parse(max_memory, world_size);
  } else {
    const int64_t per_rank =
        parallel::default_rank_budget(parallel::available_host_memory(), local_ranks);
    std::vector<std::pair<parallel::DeviceKey, int64_t>> entries;
    for (int r = 0; r < world_size; ++r)
      entries.emplace_back(parallel::DeviceKey::rank(r), per_rank);
    budget = parallel::MaxMemory(std::move(entries));
  }
  const parallel::ModuleTree tree =
      transformer_class_name(folder) == "FluxTransformer2DModel"
          ? models::flux::flux_transformer_module_tree(folder)
          : models::qwen_image::qwen_image_transformer_module_tree(folder);
  parallel::SizeOptions sizes;
  sizes.dtype = dtype == DType::F32 ? SafetensorsDType::F32 : SafetensorsDType::BF16;
  auto placement = parallel::place_model(tree, device_map, budget, world_size, sizes, user_set);
  check_disk_weights_readable(folder, placement.device_map, "--transformer-device-map");
  return placement;
}

AgreedPlacement agree_transformer_placement(dist::Communicator& world, const std::string& folder,
                                            const std::string& device_map,
                                            const std::string& max_memory, int stages,
                                            DType dtype) {
  AgreedPlacement agreed;
  agreed.hosts = dist::gather_host_names(world);
  const int local_ranks = dist::ranks_on_host_of(agreed.hosts, 0);
  std::string map_json;
  if (world.rank() == 0) {
    const auto placement =
        plan_transformer_placement(folder, device_map, max_memory, stages, local_ranks, dtype);
    map_json = parallel::device_map_to_json(placement.device_map).dump();
    nlohmann::ordered_json bytes = nlohmann::ordered_json::object();
    for (const auto& [device, n] : placement.bytes.per_device) bytes[device.str()] = n;
    agreed.summary = str_cat(map_json, "; bytes per device ", bytes.dump());
  }
  dist::broadcast_string(world, map_json, 0);
  agreed.map = parallel::device_map_from_json(nlohmann::ordered_json::parse(map_json));
  return agreed;
}

TransformerModel load_placed_transformer(const std::string& folder, DType compute,
                                         const parallel::DeviceMap& map,
                                         dist::Communicator& group) {
  if (transformer_class_name(folder) == "FluxTransformer2DModel")
    return FluxTransformer2DModel::from_pretrained_placed(folder, compute, map, group);
  return QwenImageTransformer2DModel::from_pretrained_placed(folder, compute, map, group);
}

void write_random_transformer(const models::flux::FluxTransformerConfig& c, DType compute,
                              uint64_t seed, const std::string& folder) {
  std::filesystem::create_directories(folder);
  std::map<std::string, Tensor> tensors;
  {
    models::ModuleLoader loader(models::RandomInit{seed}, compute);
    loader.record_into(&tensors);
    const FluxTransformer2DModel model(c, loader);
  }
  write_safetensors(folder + "/diffusion_pytorch_model.safetensors", tensors);
  write_config(folder, {{"_class_name", "FluxTransformer2DModel"},
                        {"patch_size", c.patch_size},
                        {"in_channels", c.in_channels},
                        {"out_channels", c.out_channels},
                        {"num_layers", c.num_layers},
                        {"num_single_layers", c.num_single_layers},
                        {"attention_head_dim", c.attention_head_dim},
                        {"num_attention_heads", c.num_attention_heads},
                        {"joint_attention_dim", c.joint_attention_dim},
                        {"pooled_projection_dim", c.pooled_projection_dim},
                        {"guidance_embeds", c.guidance_embeds},
                        {"axes_dims_rope", c.axes_dims_rope}});
}

void write_random_transformer(const models::qwen_image::QwenImageTransformerConfig& c,
                              DType compute, uint64_t seed, const std::string& folder) {
  std::filesystem::create_directories(folder);
  std::map<std::string, Tensor> tensors;
  {
    models::ModuleLoader loader(models::RandomInit{seed}, compute);
    loader.record_into(&tensors);
    const QwenImageTransformer2DModel model(c, loader);
  }
  write_safetensors(folder + "/diffusion_pytorch_model.safetensors", tensors);
  write_config(folder, {{"_class_name", "QwenImageTransformer2DModel"},
                        {"patch_size", c.patch_size},
                        {"in_channels", c.in_channels},
                        {"out_channels", c.out_channels},
                        {"num_layers", c.num_layers},
                        {"attention_head_dim", c.attention_head_dim},
                        {"num_attention_heads", c.num_attention_heads},
                        {"joint_attention_dim", c.joint_attention_dim},
                        {"axes_dims_rope", c.axes_dims_rope}});
}

}  // namespace paradiff::engine
