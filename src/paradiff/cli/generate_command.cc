// paradiff generate: text to image. Under mpirun the world is split into context-parallel groups
// (--ulysses-degree x --ring-degree ranks each; one rank each without context parallelism) that
// share the prompts between them with split_between_processes semantics. In each group the
// prompt is encoded once (by the group's first rank) and the embeddings broadcast, every rank
// starts from the same latents, and only the first rank decodes and writes the image.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/memory.h"
#include "paradiff/core/threads.h"
#include "paradiff/core/timer.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/io/png.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/parallel/data_parallel.h"
#include "paradiff/pipeline/flux_pipeline.h"

namespace paradiff::cli {

namespace {

namespace fs = std::filesystem;

struct Options {
  std::string model, prompt, prompts_file, output = "out.png", dtype = "fp32", save_latents;
  pipeline::GenerationOptions gen;
  int threads = 0;
  bool apply_padding = false, quiet = false;
  parallel::ContextParallelConfig cp;
};

std::vector<std::string> read_prompts(const Options& o) {
  PARADIFF_CHECK(o.prompt.empty() != o.prompts_file.empty(),
                 "give exactly one of --prompt or --prompts");
  if (!o.prompt.empty()) return {o.prompt};
  std::ifstream in(o.prompts_file);
  PARADIFF_CHECK(in.good(), "--prompts '", o.prompts_file, "' cannot be read");
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) prompts.push_back(line);
  PARADIFF_CHECK(!prompts.empty(), "--prompts '", o.prompts_file, "' holds no prompt");
  return prompts;
}

// out.png for one prompt; out_<index>.png for each of several.
std::string output_path(const std::string& output, size_t index, size_t count) {
  if (count == 1) return output;
  const fs::path p(output);
  return (p.parent_path() /
          (p.stem().string() + "_" + std::to_string(index) + p.extension().string()))
      .string();
}

int run(const Options& o, dist::Communicator& world) {
  const DType compute = compute_dtype(o.dtype);
  if (o.threads > 0) set_num_threads(o.threads);
  const bool root = world.rank() == 0;
  if (o.quiet) set_log_level(LogLevel::Warning);

  // Everything a user can get wrong is checked before any model is loaded.
  const std::vector<std::string> prompts = read_prompts(o);
  const bool use_cp = context_parallel_requested(o.cp);
  parallel::ContextParallelConfig cp = o.cp;
  if (!use_cp) cp = {1, 1, true, "p2p"};
  std::shared_ptr<parallel::DeviceMesh> mesh;
  int groups = world.size(), group = world.rank(), group_rank = 0;
  std::unique_ptr<dist::Communicator> group_comm;
  if (use_cp) {
    mesh = std::make_shared<parallel::DeviceMesh>(world, cp);
    groups = mesh->data_parallel_size();
    group = mesh->data_parallel_index();
    group_rank = mesh->context_parallel().rank();
  } else {
    group_comm = world.split(world.rank(), 0);  // a group of one
  }
  dist::Communicator& group_world = use_cp ? mesh->context_parallel() : *group_comm;
  check_output_folder(o.output);
  const pipeline::FluxPipeline pipe(o.model, compute);
  const pipeline::GenerationOptions gen = pipe.resolve(o.gen);
  if (root)
    log_info("generating ", prompts.size(), " image(s) of ", gen.width, "x", gen.height, " in ",
             gen.num_inference_steps, " steps on ", world.size(), " process(es): ", groups,
             " group(s)", use_cp ? str_cat(" of ", cp.describe()) : std::string());

  const auto mine = parallel::split_between_processes(static_cast<int64_t>(prompts.size()), groups,
                                                      group, o.apply_padding);
  const int64_t real = parallel::real_items(static_cast<int64_t>(prompts.size()), groups, group);
  Stopwatch total;
  double encode_s = 0, denoise_s = 0, decode_s = 0;
  int64_t steps_done = 0;
  // This group's prompts go through each stage as one batch, so every model loads once.
  if (!mine.empty()) {
    std::vector<std::string> batch;
    for (int64_t index : mine) batch.push_back(prompts[index]);
    const int64_t b = static_cast<int64_t>(batch.size());
    Stopwatch stage;
    pipeline::PromptEmbeds embeds;
    if (group_rank == 0) embeds = pipe.encode_prompt(batch, gen.max_sequence_length);
    dist::broadcast_tensor(group_world, embeds.prompt_embeds, 0);
    dist::broadcast_tensor(group_world, embeds.pooled_prompt_embeds, 0);
    encode_s = stage.seconds();

    stage.restart();
    const bool report = root && !o.quiet;
    const bool tty = isatty(fileno(stderr)) != 0;
    const std::string label =
        b == 1 ? str_cat("prompt ", mine[0]) : str_cat("prompts ", mine.front(), "-", mine.back());
    auto progress = [&](int64_t step, int64_t steps, double elapsed) {
      if (!report) return;
      const double per = elapsed / step;
      // One line rewritten in place on a terminal; a line per step in a log.
      std::fprintf(stderr, "%s%s: step %lld/%lld  %.2f s/it  elapsed %.1f s  ETA %.1f s%s",
                   tty ? "\r" : "", label.c_str(), static_cast<long long>(step),
                   static_cast<long long>(steps), per, elapsed, per * (steps - step),
                   tty && step < steps ? " " : "\n");
    };
    // Every prompt starts from the seed's latents, as one diffusers call per prompt would.
    const Tensor start = pipe.prepare_latents(gen);
    const Tensor latents =
        pipe.denoise(embeds, concat(std::vector<Tensor>(b, start), 0), gen, mesh, progress);
    denoise_s = stage.seconds();
    steps_done = gen.num_inference_steps;

    stage.restart();
    if (group_rank == 0 && real > 0) {
      const Tensor images = pipe.decode(latents.slice(0, real), gen);
      for (int64_t k = 0; k < real; ++k) {
        const size_t index = static_cast<size_t>(mine[k]);
        if (!o.save_latents.empty())
          write_safetensors(output_path(o.save_latents, index, prompts.size()),
                            {{"latents", latents.slice(k, 1)}});
        const std::string path = output_path(o.output, index, prompts.size());
        write_png(path, images.select(k));
        log_info("wrote ", path);
      }
    }
    decode_s = stage.seconds();
  }
  int64_t peak = peak_bytes();
  world.allreduce(&peak, 1, dist::ReduceType::I64, dist::ReduceOp::Max);
  double stage_s[3] = {encode_s, denoise_s, decode_s};
  world.allreduce(stage_s, 3, dist::ReduceType::F64, dist::ReduceOp::Max);
  world.barrier();
  if (root && !o.quiet) {
    std::fprintf(stderr,
                 "summary: %zu image(s) in %.1f s | encode %.1f s, denoise %.1f s (%.2f steps/s),"
                 " decode %.1f s | peak memory %.1f MB per rank (largest)\n",
                 prompts.size(), total.seconds(), stage_s[0], stage_s[1],
                 stage_s[1] > 0 ? steps_done / stage_s[1] : 0.0, stage_s[2], peak / 1e6);
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("generate", "Text to image with a diffusers FLUX folder");
  cmd->add_option("--model", o->model, "diffusers FluxPipeline folder (model_index.json, ...)")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd->add_option("--prompt", o->prompt, "the prompt");
  cmd->add_option("--prompts", o->prompts_file, "a file of prompts, one per line");
  cmd->add_option("--height", o->gen.height, "image height (default: the model's, 1024 for FLUX)");
  cmd->add_option("--width", o->gen.width, "image width (default: the model's)");
  cmd->add_option("--num-inference-steps", o->gen.num_inference_steps, "denoising steps")
      ->capture_default_str();
  cmd->add_option("--guidance-scale", o->gen.guidance_scale,
                  "guidance for guidance-distilled models")
      ->capture_default_str();
  cmd->add_option("--seed", o->gen.seed, "torch.Generator().manual_seed(seed)")
      ->capture_default_str();
  cmd->add_option("--max-sequence-length", o->gen.max_sequence_length, "T5 tokens")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute precision: fp32 or bf16")
      ->envname("PARADIFF_DTYPE")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "kernel threads per process")
      ->envname("PARADIFF_THREADS");
  cmd->add_option("--output", o->output, "PNG path (<stem>_<index>.png for several prompts)")
      ->capture_default_str();
  cmd->add_option("--save-latents", o->save_latents,
                  "also write the final packed latents (safetensors, `latents`), as diffusers' "
                  "output_type=\"latent\"");
  cmd->add_flag("--apply-padding", o->apply_padding,
                "data parallel: pad short prompt shares with the last prompt");
  cmd->add_flag("--quiet", o->quiet, "no progress or summary");
  add_context_parallel_options(*cmd, o->cp);
  cmd->callback(
      [o, &action] { action = [o](dist::Communicator& world) { return run(*o, world); }; });
}

}  // namespace paradiff::cli
