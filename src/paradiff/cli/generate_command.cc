// paradiff generate: text to image, a thin front-end over the engine. The engine splits the
// prompts between data-parallel replicas, encodes once per replica, denoises (context- and
// cfg-parallel as the flags say) and hands every image to rank 0, which writes the PNGs and
// prints progress and the summary.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "paradiff/cli/commands.h"
#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/threads.h"
#include "paradiff/engine/engine.h"
#include "paradiff/engine/progress_printer.h"
#include "paradiff/io/png.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/kernels/weight_storage.h"

namespace paradiff::cli {

namespace {

namespace fs = std::filesystem;

struct Options {
  std::string model, prompt, prompts_file, output = "out.png", dtype = "fp32", save_latents;
  WeightOptions weights;
  std::string variant;
  bool prompt_given = false;  // --prompt "" is a valid (empty) prompt, as in diffusers
  std::vector<std::string> negative_prompt;
  engine::GenerationRequest request;
  int threads = 0;
  bool quiet = false;
  ParallelOptions parallel;
  std::string device_map, transformer_device_map, vae_device_map, max_memory;
  int placement_stages = 0;  // 0: every rank (one placement group)
  std::string text_encoder_2_device_map, text_encoder_device_map;
};

// A --prompts file: one prompt per line; trailing whitespace (spaces, tabs, a Windows \r) is
// dropped, and lines left empty are skipped (an empty prompt is given with --prompt "").
std::vector<std::string> read_prompts(const Options& o) {
  PARADIFF_CHECK(o.prompt_given != !o.prompts_file.empty(),
                 "give exactly one of --prompt or --prompts");
  if (o.prompt_given) return {o.prompt};
  std::ifstream in(o.prompts_file);
  PARADIFF_CHECK(in.good(), "--prompts '", o.prompts_file, "' cannot be read");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    line.erase(line.find_last_not_of(" \t\r\v\f") + 1);
    if (!line.empty()) prompts.push_back(line);
  }
  PARADIFF_CHECK(!prompts.empty(), "--prompts '", o.prompts_file, "' holds no prompt");
  return prompts;
}

// out.png for one prompt; out_<index>.png for each of several; with several images per prompt,
// out_<index>_<image>.png (even for one prompt, so the names say which prompt they are).
std::string output_path(const std::string& output, const engine::GeneratedImage& image,
                        size_t count, int64_t per_prompt) {
  if (count == 1 && per_prompt == 1) return output;
  std::string suffix = "_" + std::to_string(image.index);
  if (per_prompt > 1) suffix += "_" + std::to_string(image.image_index);
  const fs::path p(output);
  return (p.parent_path() / (p.stem().string() + suffix + p.extension().string())).string();
}

int run(const Options& o, dist::Communicator& world) {
  const bool root = world.rank() == 0;
  if (o.quiet) set_log_level(LogLevel::Warning);
  // Everything a user can get wrong is checked before any model is loaded.
  engine::EngineOptions engine_options;
  engine_options.model = o.model;
  engine_options.compute = compute_dtype(o.dtype);
  engine_options.variant = o.variant;
  if (o.threads > 0) set_num_threads(o.threads);
  engine::GenerationRequest request = o.request;
  request.prompt = read_prompts(o);
  request.negative_prompt = o.negative_prompt;
  request.validate();
  engine_options.parallel = o.parallel.config();
  engine_options.device_map = o.device_map;
  engine_options.transformer_device_map = o.transformer_device_map;
  engine_options.vae_device_map = o.vae_device_map;
  engine_options.text_encoder_2_device_map = o.text_encoder_2_device_map;
  engine_options.text_encoder_device_map = o.text_encoder_device_map;
  engine_options.max_memory = o.max_memory;
  if (o.placement_stages > 0) engine_options.parallel.stage_degree = o.placement_stages;
  engine_options.share_weights = dist::parse_weight_sharing(o.weights.share_weights);
  engine_options.transformer_storage = kernels::parse_weight_storage(o.weights.storage_dtype);
  engine_options.fully_shard_degree = o.weights.fully_shard_degree;
  // A one-shot run holds one stage's weights at a time.
  engine_options.cache_policy = pipeline::ComponentCache::Policy::ReleaseAfterStage;
  check_output_folder(o.output);
  engine::Engine engine(world, engine_options);
  if (root && !engine.placement_report().empty())
    log_info("placement: ", engine.placement_report());
  const pipeline::GenerationOptions gen = engine.resolve(request);
  // Run the resolved sizes, so that the run's own resolve has nothing left to round (and to warn
  // about a second time).
  request.height = gen.height;
  request.width = gen.width;
  const auto& parallel = engine.options().parallel;
  if (root)
    log_info("generating ", request.prompt.size() * request.num_images_per_prompt, " image(s) of ",
             gen.width, "x", gen.height, " in ", gen.num_inference_steps, " steps on ",
             world.size(), " process(es): ", engine.replicas(), " group(s)",
             parallel.replica_degree() > 1 ? str_cat(" of ", parallel.describe()) : std::string());

  const bool report = root && !o.quiet;
  const auto result =
      engine.run(request, report ? engine::progress_printer() : engine::ProgressCallback{});
  const size_t count = request.prompt.size();
  const int64_t per_prompt = request.num_images_per_prompt;
  for (const auto& image : result.images) {
    if (!o.save_latents.empty())
      write_safetensors(output_path(o.save_latents, image, count, per_prompt),
                        {{"latents", image.latents}});
    if (image.image.defined()) {
      const std::string path = output_path(o.output, image, count, per_prompt);
      write_png(path, image.image);
      log_info("wrote ", path);
    }
  }
  if (report) {
    const auto& s = result.stats;
    std::fprintf(stderr,
                 "summary: %zu image(s) in %.1f s | encode %.1f s, denoise %.1f s (%.2f steps/s),"
                 " decode %.1f s | peak memory %.1f MB per rank (largest) | %s\n",
                 result.images.size(), s.total_seconds, s.encode_seconds, s.denoise_seconds,
                 s.denoise_seconds > 0 ? s.steps / s.denoise_seconds : 0.0, s.decode_seconds,
                 s.peak_bytes / 1e6, cpu_isa_summary().c_str());
    std::fprintf(stderr,
                 "memory: transformer weights %.1f MB (%s) | PSS per rank %.1f MB (weights %.1f)"
                 " | PSS per host %.1f MB (weights %.1f) | peak RSS per rank %.1f MB\n",
                 s.weight_bytes / 1e6,
                 o.weights.fully_shard_degree > 1
                     ? str_cat("blocks sharded by ", o.weights.fully_shard_degree).c_str()
                 : s.shared_weights ? "one copy per host"
                                    : "one copy per rank",
                 s.rank_pss_bytes / 1e6, s.rank_weights_pss_bytes / 1e6, s.host_pss_bytes / 1e6,
                 s.host_weights_pss_bytes / 1e6, s.peak_rss_bytes / 1e6);
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto& r = o->request;
  CLI::App* cmd = app.add_subcommand("generate", "Text to image with a diffusers pipeline folder");
  cmd->add_option("--model", o->model, "diffusers pipeline folder (model_index.json, ...)")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd->add_option("--prompt", o->prompt, "the prompt (may be empty)")
      ->each([o](const std::string&) { o->prompt_given = true; });
  cmd->add_option("--prompts", o->prompts_file, "a file of prompts, one per line");
  cmd->add_option("--negative-prompt", o->negative_prompt,
                  "true CFG: what to steer away from (one for every prompt, or one per prompt)");
  cmd->add_option("--true-cfg-scale", r.true_cfg_scale,
                  "true classifier-free guidance scale (with --negative-prompt, > 1)")
      ->capture_default_str();
  cmd->add_option("--height", r.height, "image height (default: the model's, 1024 for FLUX)");
  cmd->add_option("--width", r.width, "image width (default: the model's)");
  cmd->add_option("--num-inference-steps", r.num_inference_steps, "denoising steps")
      ->capture_default_str();
  cmd->add_option("--guidance-scale", r.guidance_scale, "guidance for guidance-distilled models")
      ->capture_default_str();
  cmd->add_option("--seed", r.seed, "torch.Generator().manual_seed(seed)")->capture_default_str();
  cmd->add_option("--num-images-per-prompt", r.num_images_per_prompt,
                  "images per prompt, from one draw of the seed as one diffusers call "
                  "(<stem>_<prompt>_<image>.png when > 1)")
      ->capture_default_str();
  cmd->add_option("--max-sequence-length", r.max_sequence_length, "T5 tokens")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute precision: fp32 or bf16")
      ->envname("PARADIFF_DTYPE")
      ->capture_default_str();
  add_weight_options(*cmd, o->weights);
  cmd->add_option("--variant", o->variant,
                  "weights variant, as diffusers' variant= (fp16 reads *.fp16.safetensors where a "
                  "component has them)");
  cmd->add_option("--threads", o->threads, "kernel threads per process")
      ->envname("PARADIFF_THREADS");
  cmd->add_option("--output", o->output,
                  "PNG path (<stem>_<index>.png for several prompts, <stem>_<index>_<image>.png "
                  "for several images per prompt)")
      ->capture_default_str();
  cmd->add_option("--save-latents", o->save_latents,
                  "also write the final packed latents (safetensors, `latents`), as diffusers' "
                  "output_type=\"latent\"");
  cmd->add_flag("--apply-padding", r.apply_padding,
                "data parallel: pad short prompt shares with the last prompt");
  cmd->add_flag("--quiet", o->quiet, "no progress or summary");
  add_parallel_options(*cmd, o->parallel, /*with_cfg=*/true);
  cmd->add_option("--device-map", o->device_map,
                  "diffusers' pipeline-level device_map: balanced deals whole components to the "
                  "ranks, each loaded only on its owner (cpu: no map)");
  cmd->add_option("--transformer-device-map", o->transformer_device_map,
                  "place the transformer's layers across the ranks: auto, balanced, "
                  "balanced_low_0, sequential, or a FILE.json map {module: rank}");
  cmd->add_option(
      "--vae-device-map", o->vae_device_map,
      "place the VAE's (AutoencoderKL, AutoencoderKLQwenImage) decoder units across the "
      "ranks, the same forms as --transformer-device-map");
  cmd->add_option("--text-encoder-2-device-map", o->text_encoder_2_device_map,
                  "place FLUX's T5 encoder's blocks across the ranks, as "
                  "--transformer-device-map does the transformer's");
  cmd->add_option("--text-encoder-device-map", o->text_encoder_device_map,
                  "the same for the text encoder's layers (FLUX's CLIP, Qwen-Image's Qwen2.5-VL)");
  cmd->add_option("--max-memory", o->max_memory,
                  "budget per rank for --device-map / --transformer-device-map, e.g. "
                  "0=16GB,1=16GB");
  cmd->add_option("--placement-stages", o->placement_stages,
                  "the stages each map deals over; the world splits into data-parallel "
                  "replicas of stages x cfg x ring x ulysses ranks (default: one replica)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->callback(
      [o, &action] { action = [o](dist::Communicator& world) { return run(*o, world); }; });
}

}  // namespace paradiff::cli
