// paradiff inspect: what a safetensors file, sharded checkpoint or model folder holds; with
// --model, where a placement would put a pipeline's components and the transformer's layers
// (computed by the engine from the headers; no weights read).
#include <cstdio>
#include <filesystem>

#include "paradiff/cli/commands.h"
#include "paradiff/dist/host_names.h"
#include "paradiff/engine/placement_plan.h"
#include "paradiff/io/checkpoint.h"

namespace paradiff::cli {

namespace {

int run(const std::string& path) {
  const Checkpoint ckpt =
      std::filesystem::is_directory(path) ? Checkpoint::open_folder(path) : Checkpoint::open(path);
  std::printf("%s: %zu tensors%s\n", ckpt.path().c_str(), ckpt.size(),
              ckpt.is_sharded() ? str_cat(" in ", ckpt.shards().size(), " shards").c_str() : "");
  int64_t total = 0;
  for (const std::string& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    total += info.numel;
    std::printf("  %-60s %s\n", name.c_str(), info.describe().c_str());
  }
  std::printf("%lld parameters\n", static_cast<long long>(total));
  for (const auto& [key, value] : ckpt.metadata())
    std::printf("metadata %s = %s\n", key.c_str(), value.c_str());
  return 0;
}

struct PlacementArgs {
  engine::PlacementOptions options;
  std::string dtype = "fp32";
  int world_size = 0;  // 0: the world's size
  bool json = false;
};

int run_placement(PlacementArgs a, dist::Communicator& world) {
  a.options.dtype = compute_dtype(a.dtype);
  a.options.world_size = a.world_size > 0 ? a.world_size : world.size();
  // Under mpirun with the placement's size, the hosts are known (collective).
  if (world.size() > 1 && a.options.world_size == world.size()) {
    a.options.hosts = dist::gather_host_names(world);
    a.options.local_ranks = dist::ranks_on_host_of(a.options.hosts, 0);
  }
  if (world.rank() != 0) return 0;
  const engine::PlacementPlan plan = engine::plan_placement(a.options);
  const auto json = engine::placement_plan_to_json(plan);
  if (a.json) {
    std::printf("%s\n", json.dump(2).c_str());
    return 0;
  }
  std::printf("pipeline:    %s\n", json["pipeline"].dump().c_str());
  std::printf("transformer: %s\n", json["transformer"].dump().c_str());
  for (const char* encoder : {"text_encoder", "text_encoder_2"})
    if (!json[encoder].is_null()) std::printf("%s: %s\n", encoder, json[encoder].dump().c_str());
  std::printf("bytes per rank: %s\n", json["bytes_per_rank"].dump().c_str());
  if (json.contains("bytes_per_host"))
    std::printf("bytes per host: %s\n", json["bytes_per_host"].dump().c_str());
  if (json.contains("largest_layer"))
    std::printf("largest layer (room kept on the first rank): %s\n",
                json["largest_layer"].dump().c_str());
  if (json.contains("step_traffic"))
    std::printf("bytes crossing between ranks per step: %lld\n",
                static_cast<long long>(json["step_traffic"]["bytes_per_step"].get<int64_t>()));
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app, Action& action) {
  auto path = std::make_shared<std::string>();
  auto placement = std::make_shared<PlacementArgs>();
  auto& o = placement->options;
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "List the tensors of a safetensors file, sharded index or model folder; with --model, show "
      "where a placement puts a pipeline's components and layers (no weights read)");
  cmd->add_option("path", *path, "file, *.safetensors.index.json or folder");
  auto* model = cmd->add_option("--model", o.model, "diffusers pipeline folder to place");
  cmd->add_option("--device-map", o.device_map,
                  "pipeline level: balanced (diffusers' device_map), or cpu (no map)")
      ->needs(model);
  cmd->add_option("--transformer-device-map", o.transformer_device_map,
                  "the transformer's layers: auto, balanced, balanced_low_0, sequential, or a "
                  "FILE.json map {module: rank | \"disk\"}")
      ->needs(model);
  cmd->add_option("--vae-device-map", o.vae_device_map,
                  "the VAE's (AutoencoderKL, AutoencoderKLQwenImage) layers, the same forms as "
                  "--transformer-device-map")
      ->needs(model);
  cmd->add_option("--text-encoder-2-device-map", o.text_encoder_2_device_map,
                  "FLUX's T5 encoder's blocks, with the same strategies or a map file")
      ->needs(model);
  cmd->add_option("--text-encoder-device-map", o.text_encoder_device_map,
                  "the text encoder's layers (FLUX's CLIP, Qwen-Image's Qwen2.5-VL), the same way")
      ->needs(model);
  cmd->add_option("--max-memory", o.max_memory,
                  "budget per rank, e.g. 0=16GB,1=16GB[,disk=200GB] (default: this host's "
                  "available memory shared among the ranks)")
      ->needs(model);
  cmd->add_option("--world-size", placement->world_size,
                  "ranks to place on (default: the ranks this command runs on)")
      ->check(CLI::PositiveNumber)
      ->needs(model);
  cmd->add_option("--dtype", placement->dtype, "fp32 or bf16: the dtype the weights load in")
      ->capture_default_str()
      ->needs(model);
  cmd->add_option("--height", o.height, "image height for the traffic estimate")
      ->capture_default_str()
      ->needs(model);
  cmd->add_option("--width", o.width, "image width for the traffic estimate")
      ->capture_default_str()
      ->needs(model);
  cmd->add_option("--variant", o.variant,
                  "weights variant, as diffusers' variant= (sizes from *.fp16.safetensors where a "
                  "component has them)")
      ->needs(model);
  cmd->add_flag("--json", placement->json, "print the placement as JSON")->needs(model);
  cmd->callback([path, placement, &action] {
    const bool place = !placement->options.model.empty();
    if (place == !path->empty())
      throw CLI::ValidationError("inspect", "give a file or folder, or --model DIR, not both");
    action = [path, placement, place](dist::Communicator& world) {
      if (place) return run_placement(*placement, world);
      return world.rank() == 0 ? run(*path) : 0;
    };
  });
}

}  // namespace paradiff::cli
