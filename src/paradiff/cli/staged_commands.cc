// The reference's staged workflow as three commands, each loading only what it needs, so each
// stage fits in memory on its own:
//   paradiff encode-prompt  (tokenizers + text encoders) -> prompt_embeds, pooled_prompt_embeds
//   paradiff denoise        (transformer + scheduler)    -> latents (output_type="latent")
//   paradiff decode         (VAE)                        -> PNG
#include <cstdio>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"
#include "paradiff/core/threads.h"
#include "paradiff/dist/tensor_broadcast.h"
#include "paradiff/io/png.h"
#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/pipeline/flux_pipeline.h"

namespace paradiff::cli {

namespace {

struct Common {
  std::string model, output, dtype = "fp32";
  int threads = 0;
  pipeline::GenerationOptions gen;
};

void add_common(CLI::App& cmd, Common& c, const char* output_help) {
  cmd.add_option("--model", c.model, "diffusers FluxPipeline folder")
      ->required()
      ->envname("PARADIFF_MODEL");
  cmd.add_option("--output", c.output, output_help)->required();
  cmd.add_option("--dtype", c.dtype, "compute precision: fp32 or bf16")
      ->envname("PARADIFF_DTYPE")
      ->capture_default_str();
  cmd.add_option("--threads", c.threads, "kernel threads per process")->envname("PARADIFF_THREADS");
}

void add_size(CLI::App& cmd, Common& c) {
  cmd.add_option("--height", c.gen.height, "image height (default: the model's)");
  cmd.add_option("--width", c.gen.width, "image width (default: the model's)");
}

// Checks and prepares what every stage shares; returns the pipeline.
pipeline::FluxPipeline open(const Common& c) {
  const DType compute = compute_dtype(c.dtype);
  if (c.threads > 0) set_num_threads(c.threads);
  check_output_folder(c.output);
  return pipeline::FluxPipeline(c.model, compute);
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
        "encode-prompt", "Stage 1: CLIP and T5 embeddings of a prompt, to a safetensors file");
    add_common(*cmd, *o, "safetensors: prompt_embeds, pooled_prompt_embeds");
    cmd->add_option("--prompt", o->prompt, "the prompt")->required();
    cmd->add_option("--max-sequence-length", o->gen.max_sequence_length, "T5 tokens")
        ->capture_default_str();
    cmd->callback([o, &action] {
      action = [o](dist::Communicator& world) {
        const auto pipe = open(*o);
        const auto gen = pipe.resolve(o->gen);
        if (world.rank() != 0) return 0;
        const auto e = pipe.encode_prompt({o->prompt}, gen.max_sequence_length);
        write_safetensors(o->output, {{"prompt_embeds", e.prompt_embeds},
                                      {"pooled_prompt_embeds", e.pooled_prompt_embeds}});
        log_info("wrote ", o->output);
        return 0;
      };
    });
  }
  {
    struct Options : Common {
      std::string embeddings, latents;
      parallel::ContextParallelConfig cp;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "denoise", "Stage 2: the denoising loop from embeddings, to final latents");
    add_common(*cmd, *o, "safetensors: latents (packed, as output_type=\"latent\")");
    add_size(*cmd, *o);
    cmd->add_option("--embeddings", o->embeddings, "encode-prompt's output")->required();
    cmd->add_option("--latents", o->latents,
                    "starting latents (safetensors `latents`, packed); default: from --seed");
    cmd->add_option("--num-inference-steps", o->gen.num_inference_steps, "denoising steps")
        ->capture_default_str();
    cmd->add_option("--guidance-scale", o->gen.guidance_scale, "for guidance-distilled models")
        ->capture_default_str();
    cmd->add_option("--seed", o->gen.seed, "torch.Generator().manual_seed(seed)")
        ->capture_default_str();
    add_context_parallel_options(*cmd, o->cp);
    cmd->callback([o, &action] {
      action = [o](dist::Communicator& world) {
        std::shared_ptr<parallel::DeviceMesh> mesh;
        if (context_parallel_requested(o->cp)) {
          mesh = std::make_shared<parallel::DeviceMesh>(world, o->cp);
          PARADIFF_CHECK(mesh->data_parallel_size() == 1,
                         "denoise runs one image: ", "ring_degree x ulysses_degree (",
                         o->cp.degree(), ") must equal the number of processes (", world.size(),
                         ")");
        }
        const auto pipe = open(*o);
        const auto gen = pipe.resolve(o->gen);
        pipeline::PromptEmbeds e;
        if (world.rank() == 0) {
          e.prompt_embeds = read_tensor(o->embeddings, "prompt_embeds");
          e.pooled_prompt_embeds = read_tensor(o->embeddings, "pooled_prompt_embeds");
        }
        dist::broadcast_tensor(world, e.prompt_embeds, 0);
        dist::broadcast_tensor(world, e.pooled_prompt_embeds, 0);
        Tensor start;
        if (o->latents.empty()) {
          start = pipe.prepare_latents(gen);
        } else {
          if (world.rank() == 0) start = read_tensor(o->latents, "latents");
          dist::broadcast_tensor(world, start, 0);
        }
        const Tensor latents = pipe.denoise(e, start, gen, mesh);
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
        const auto pipe = open(*o);
        const auto gen = pipe.resolve(o->gen);
        if (world.rank() != 0) return 0;
        const Tensor images = pipe.decode(read_tensor(o->latents, "latents"), gen);
        write_png(o->output, images.select(0));
        log_info("wrote ", o->output);
        return 0;
      };
    });
  }
}

}  // namespace paradiff::cli
