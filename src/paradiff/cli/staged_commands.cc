// The reference's staged workflow as three commands over the engine, each loading only what it
// needs, so each stage fits in memory on its own:
//   paradiff encode-prompt  (tokenizers + text encoders) -> the pipeline's conditioning
//                           (FLUX: prompt_embeds, pooled_prompt_embeds)
//   paradiff denoise        (transformer + scheduler)    -> latents (output_type="latent")
//   paradiff decode         (VAE)                        -> PNG
#include <cstdio>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/threads.h"
#include "paradiff/engine/engine.h"
#include "paradiff/io/png.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"

namespace paradiff::cli {

namespace {

struct Common {
  std::string model, output, dtype = "fp32", variant;
  int threads = 0;
  engine::GenerationRequest request;
  ParallelOptions parallel;
};

void add_common(CLI::App& cmd, Common& c, const char* output_help) {
  cmd.add_option("--model", c.model, "diffusers pipeline folder")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd.add_option("--output", c.output, output_help)->required();
  cmd.add_option("--dtype", c.dtype, "compute precision: fp32 or bf16")
      ->envname("PARADIFF_DTYPE")
      ->capture_default_str();
  cmd.add_option("--threads", c.threads, "kernel threads per process")->envname("PARADIFF_THREADS");
  cmd.add_option("--variant", c.variant,
                 "weights variant, as diffusers' variant= (fp16 reads *.fp16.safetensors where a "
                 "component has them)");
}

void add_size(CLI::App& cmd, Common& c) {
  cmd.add_option("--height", c.request.height, "image height (default: the model's)");
  cmd.add_option("--width", c.request.width, "image width (default: the model's)");
}

// Checks what every stage shares and opens the engine (no weights loaded yet).
engine::Engine open(const Common& c, dist::Communicator& world) {
  engine::EngineOptions options;
  options.model = c.model;
  options.compute = compute_dtype(c.dtype);
  options.variant = c.variant;
  options.parallel = c.parallel.config();
  options.cache_policy = pipeline::ComponentCache::Policy::ReleaseAfterStage;
  if (c.threads > 0) set_num_threads(c.threads);
  check_output_folder(c.output);
  return engine::Engine(world, options);
}

Tensor read_tensor(const std::string& path, const char* name) {
  const auto file = SafetensorsFile::open(path);
  PARADIFF_CHECK(file.contains(name), path, " has no tensor '", name, "'");
  return file.read(name, DType::F32);
}

}  // namespace

void add_staged_commands(CLI::App& app, Action& action) {
  {
    struct Options : Common {
      std::string prompt;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "encode-prompt",
        "Stage 1: the text encoders' embeddings of a prompt, to a safetensors file");
    add_common(*cmd, *o, "safetensors: prompt_embeds, pooled_prompt_embeds (FLUX)");
    cmd->add_option("--prompt", o->prompt, "the prompt")->required();
    cmd->add_option("--max-sequence-length", o->request.max_sequence_length, "T5 tokens")
        ->capture_default_str();
    cmd->callback([o, &action] {
      action = [o](dist::Communicator& world) {
        auto engine = open(*o, world);
        engine::GenerationRequest request = o->request;
        request.prompt = {o->prompt};
        const auto conditioning = engine.encode_prompt(request);
        if (world.rank() != 0) return 0;
        write_safetensors(o->output, conditioning);
        log_info("wrote ", o->output);
        return 0;
      };
    });
  }
  {
    struct Options : Common {
      std::string embeddings, latents;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "denoise", "Stage 2: the denoising loop from embeddings, to final latents");
    add_common(*cmd, *o, "safetensors: latents (packed, as output_type=\"latent\")");
    add_size(*cmd, *o);
    cmd->add_option("--embeddings", o->embeddings, "encode-prompt's output")->required();
    cmd->add_option("--latents", o->latents,
                    "starting latents (safetensors `latents`, packed); default: from --seed");
    cmd->add_option("--num-inference-steps", o->request.num_inference_steps, "denoising steps")
        ->capture_default_str();
    cmd->add_option("--guidance-scale", o->request.guidance_scale, "for guidance-distilled models")
        ->capture_default_str();
    cmd->add_option("--true-cfg-scale", o->request.true_cfg_scale,
                    "true CFG scale (the embeddings must hold negative_* tensors)")
        ->capture_default_str();
    cmd->add_option("--seed", o->request.seed, "torch.Generator().manual_seed(seed)")
        ->capture_default_str();
    add_parallel_options(*cmd, o->parallel, /*with_cfg=*/true);
    cmd->callback([o, &action] {
      action = [o](dist::Communicator& world) {
        auto engine = open(*o, world);
        engine::GenerationRequest request = o->request;
        request.prompt = {""};  // the conditioning comes from the file
        pipeline::Conditioning conditioning;
        Tensor start;
        if (world.rank() == 0) {
          const auto file = SafetensorsFile::open(o->embeddings);
          for (const auto& name : file.names()) conditioning[name] = file.read(name, DType::F32);
          if (!o->latents.empty()) start = read_tensor(o->latents, "latents");
        }
        const Tensor latents = engine.denoise(conditioning, start, request);
        if (world.rank() == 0) {
          write_safetensors(o->output, {{"latents", latents}});
          log_info("wrote ", o->output);
        }
        return 0;
      };
    });
  }
  {
    struct Options : Common {
      std::string latents;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand("decode", "Stage 3: final latents to a PNG through the VAE");
    add_common(*cmd, *o, "PNG path");
    add_size(*cmd, *o);
    cmd->add_option("--latents", o->latents, "denoise's output")->required();
    cmd->callback([o, &action] {
      action = [o](dist::Communicator& world) {
        auto engine = open(*o, world);
        engine::GenerationRequest request = o->request;
        request.prompt = {""};
        const Tensor images = engine.decode(
            world.rank() == 0 ? read_tensor(o->latents, "latents") : Tensor(), request);
        if (world.rank() != 0) return 0;
        write_png(o->output, images.select(0));
        log_info("wrote ", o->output);
        return 0;
      };
    });
  }
}

}  // namespace paradiff::cli
