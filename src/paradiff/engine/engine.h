// The engine: what every front-end (the CLI, the Python package, the server) runs. It owns the
// world's process mesh and the pipeline (with its component cache, so each component loads once
// per process and serves every prompt and request), and runs a generation SPMD-style: every
// rank calls run() with the same request. The (prompt, image) pairs are split between the mesh's
// data-parallel replicas (split_between_processes); in each replica the first rank encodes the
// prompts and broadcasts the conditioning, every rank denoises (context- and cfg-parallel as the
// mesh says), the first rank decodes (under a pipeline-level map, each component's owner encodes
// or decodes instead), and rank 0 of the world receives every image and latent. All collective
// communication of a generation lives here and below, never in a front-end.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"
#include "paradiff/dist/host_weights.h"
#include "paradiff/engine/generation_request.h"
#include "paradiff/kernels/weight_storage.h"
#include "paradiff/parallel/device_mesh.h"
#include "paradiff/pipeline/diffusion_pipeline.h"

namespace paradiff::engine {

struct EngineOptions {
  std::string model;  // a diffusers pipeline folder
  DType compute = DType::F32;
  parallel::ParallelConfig parallel;
  pipeline::ComponentCache::Policy cache_policy = pipeline::ComponentCache::Policy::KeepLoaded;
  // Model-level placement of the transformer: "auto", "balanced", "balanced_low_0",
  // "sequential" or a .json map, dealt over the mesh's stage dimension (parallel.stage_degree;
  // left at 1, it becomes world / (cfg x ring x ulysses): one placement group; set, the world
  // splits into data-parallel replicas of stage x cfg x ring x ulysses ranks, each dealt the same
  // maps; refused without a map). "" = none.
  std::string transformer_device_map{};
  // Model-level placement of the VAE (AutoencoderKL): its decoder's units over the same stage
  // ranks, decode collective over them. Not with cfg or context parallelism or --device-map.
  std::string vae_device_map{};
  // The same for FLUX's T5 (text_encoder_2): its blocks over the ranks of the stage group, which
  // all run the encoder together and all receive prompt_embeds. "" = none.
  std::string text_encoder_2_device_map{};
  // FLUX's CLIP or Qwen-Image's Qwen2.5-VL (text_encoder), the same way.
  std::string text_encoder_device_map{};
  // Pipeline-level placement (diffusers' device_map): "balanced" deals whole components to the
  // stages, each loaded only on its owner: a text encoder or the VAE on the stage's first rank,
  // the transformer on every rank of the stage (its cfg/ring/ulysses group); "" or "cpu" = none.
  // With a transformer map too, the transformer is placed by that map and left out of the deal.
  std::string device_map{};
  std::string max_memory{};  // "0=16GB,1=16GB"; "" = this host's available memory shared
  // Whether the ranks of one replica on one host share one copy of the transformer's prepared
  // weights (dist/host_weights.h).
  dist::WeightSharing share_weights = dist::WeightSharing::Auto;
  // The storage of the transformer's GEMM weights (kernels/weight_storage.h): Bf16 or Fp8E4M3
  // narrow them for F32 compute (diffusers' enable_layerwise_casting).
  kernels::WeightStorage transformer_storage = kernels::WeightStorage::AsComputed;
  // N > 1: the transformer blocks' prepared weights are split over N ranks of each
  // context-parallel group and all-gathered block by block (dist/sharded_block_weights.h).
  int fully_shard_degree = 1;
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
  // What the kernel says (core/process_memory.h) after the denoising step of largest PSS (peak
  // RSS: at the end). Per rank: largest over
  // ranks; per host: summed over a host's ranks, largest over hosts. "Weights": the
  // transformer's prepared weights (one copy: weight_bytes).
  int64_t weight_bytes = 0;
  bool shared_weights = false;  // some host's ranks shared one copy
  int64_t rank_pss_bytes = 0, rank_weights_pss_bytes = 0, peak_rss_bytes = 0;
  int64_t host_pss_bytes = 0, host_weights_pss_bytes = 0;
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
  // The placement as `paradiff inspect --json` shows it (on every rank; empty without a
  // placement).
  const std::string& placement_report() const { return placement_report_; }
  int replicas() const { return mesh_->size(parallel::MeshDim::Data); }

  // The request's options as the pipeline resolves them (the same on every rank).
  pipeline::GenerationOptions resolve(const GenerationRequest& request) const;

  // Text to image for every prompt of the request (collective over the world).
  GenerationResult run(const GenerationRequest& request, const ProgressCallback& on_step = {});

  // The reference's staged workflow, each stage collective over a world that is one replica.
  // Stage 1: the conditioning of request.prompt, computed on rank 0, or under a pipeline-level
  // map by the text encoders' owners; returned on rank 0 (empty elsewhere).
  pipeline::Conditioning encode_prompt(const GenerationRequest& request);
  // Stage 2: the conditioning (and optional starting latents; undefined: one row per
  // conditioning row, drawn at once from the seed) held by rank 0 go to every rank, which denoise
  // together; rank 0 returns the final latents.
  Tensor denoise(pipeline::Conditioning conditioning, Tensor latents,
                 const GenerationRequest& request, const ProgressCallback& on_step = {});
  // Stage 3: rank 0's `latents` decoded to images (B, 3, H, W), returned on rank 0; decoded on
  // rank 0, or under a pipeline-level map by the VAE's owner.
  Tensor decode(const Tensor& latents, const GenerationRequest& request);

  // For front-ends whose every rank returns the outputs (the Python package, as diffusers does):
  // world rank 0's tensors (or result images) replace every other rank's. Collective.
  void share_from_root(parallel::NamedTensors& tensors);
  void share_results(GenerationResult& result);
  // A seed drawn on world rank 0 from the system's entropy and given to every rank (diffusers
  // without a generator draws fresh noise every call; every rank must draw the same). Collective.
  uint64_t shared_random_seed();

 private:
  // Checks that the world is one replica (the staged commands make one image together).
  void require_one_replica(const char* stage) const;

  dist::Communicator& world_;
  EngineOptions options_;
  std::unique_ptr<dist::Communicator> host_;          // this host's ranks (memory figures)
  std::unique_ptr<dist::Communicator> host_replica_;  // ...of this replica (they load together)
  dist::HostWeights transformer_weights_;
  std::shared_ptr<parallel::DeviceMesh> mesh_;
  std::unique_ptr<pipeline::DiffusionPipeline> pipeline_;
  std::string placement_report_;
  // The pipeline-level map, as replica ranks (PipelineRuntime::component_ranks); empty: none.
  std::map<std::string, int> component_ranks_;
  bool encoders_placed_ = false;  // a text encoder's layers are placed: encoding is collective
};

}  // namespace paradiff::engine
