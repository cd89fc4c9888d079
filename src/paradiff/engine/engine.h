// The engine: what every front-end (the CLI, the Python package, the server) runs. It owns the
// world's process mesh and the pipeline (with its component cache, so each component loads once
// per process and serves every prompt and request), and runs a generation SPMD-style: every
// rank calls run() with the same request. The (prompt, image) pairs are split between the mesh's
// data-parallel replicas (split_between_processes); in each replica the first rank encodes the
// prompts and broadcasts the conditioning, every rank denoises (context- and cfg-parallel as the
// mesh says), the first rank decodes, and rank 0 of the world receives every image and latent. All
// collective communication of a generation lives here and below, never in a front-end.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/engine/generation_request.h"
#include "paradiff/parallel/device_mesh.h"
#include "paradiff/pipeline/diffusion_pipeline.h"

namespace paradiff::engine {

struct EngineOptions {
  std::string model;  // a diffusers pipeline folder
  DType compute = DType::F32;
  parallel::ParallelConfig parallel;
  pipeline::ComponentCache::Policy cache_policy = pipeline::ComponentCache::Policy::KeepLoaded;
  // diffusers' variant= ("fp16"), see PipelineRuntime::variant; initialised, so that brace-inits
  // may omit it.
  std::string variant = "";
};

struct GeneratedImage {
  int64_t index = 0;        // the prompt's index in the request
  int64_t image_index = 0;  // which of the prompt's num_images_per_prompt images (0-based)
  Tensor latents;           // (1, tokens, channels) F32: the final latents
  Tensor image;             // (3, H, W) F32 in [0, 1]; undefined for output_type "latent"
};

struct GenerationStats {
  double encode_seconds = 0, denoise_seconds = 0, decode_seconds = 0;  // largest over ranks
  double total_seconds = 0;
  int64_t steps = 0;       // denoising steps of the largest share
  int64_t peak_bytes = 0;  // largest peak allocation of any rank
  int replicas = 1;
  int64_t prompts_here = 0;  // images this rank's replica ran (padding included)
};

struct GenerationResult {
  // On world rank 0: num_images_per_prompt per prompt, in prompt order, each prompt's images in
  // image order (diffusers' order).
  std::vector<GeneratedImage> images;
  GenerationStats stats;  // on every rank
};

// Every rank hears of every step of its own replica's denoising: the progress and, for each
// image this replica runs, its prompt's index. Returning false cancels; every rank of a replica
// must then return false at the same step (a front-end decides on one rank and broadcasts).
using ProgressCallback =
    std::function<bool(const pipeline::StepProgress&, const std::vector<int64_t>& prompts)>;

class Engine {
 public:
  // Collective over `world`: validates the parallel config against the world, builds the mesh and
  // opens the pipeline (its folder checked; no weights are read yet).
  Engine(dist::Communicator& world, const EngineOptions& options);

  dist::Communicator& world() { return world_; }
  parallel::DeviceMesh& mesh() { return *mesh_; }
  pipeline::DiffusionPipeline& pipeline() { return *pipeline_; }
  const EngineOptions& options() const { return options_; }
  int replicas() const { return mesh_->size(parallel::MeshDim::Data); }

  // The request's options as the pipeline resolves them (the same on every rank).
  pipeline::GenerationOptions resolve(const GenerationRequest& request) const;

  // Text to image for every prompt of the request (collective over the world).
  GenerationResult run(const GenerationRequest& request, const ProgressCallback& on_step = {});

  // The reference's staged workflow, each stage collective over a world that is one replica.
  // Stage 1: the conditioning of request.prompt, computed on rank 0 (empty elsewhere).
  pipeline::Conditioning encode_prompt(const GenerationRequest& request);
  // Stage 2: the conditioning (and optional starting latents; undefined: drawn from the seed)
  // held by rank 0 go to every rank, which denoise together; rank 0 returns the final latents.
  Tensor denoise(pipeline::Conditioning conditioning, Tensor latents,
                 const GenerationRequest& request, const ProgressCallback& on_step = {});
  // Stage 3: rank 0 decodes `latents` to images (B, 3, H, W).
  Tensor decode(const Tensor& latents, const GenerationRequest& request);

 private:
  // Checks that the world is one replica (the staged commands make one image together).
  void require_one_replica(const char* stage) const;

  dist::Communicator& world_;
  EngineOptions options_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
  std::unique_ptr<pipeline::DiffusionPipeline> pipeline_;
};

}  // namespace paradiff::engine
