// A hostile corpus of whole pipeline folders: each case copies the tiny valid FLUX (or
// Qwen-Image) pipeline folder into a temporary directory, changes one thing, and runs a one-step
// generation through load_pipeline. Each must be refused with paradiff::Error (never a crash or a
// hang) whose message names the file and the key or value, and at the stage the table says:
// config problems when the pipeline opens (no weight read), tokenizer problems before any text
// encoder's weights, weight problems naming the tensor. A few harmless oddities must be accepted.
// docs/usage.md ("What paradiff refuses") points here.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "paradiff/io/safetensors_writer.h"
#include "paradiff/pipeline/pipeline_registry.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

enum class Fixture { Flux, Qwen };
enum class Stage {
  Open,        // load_pipeline refuses it: only model_index.json and config files were read
  Tokenizers,  // encode_prompt refuses it before loading any model component
  Weights,     // refused while binding that component's weights
  Accepted,    // harmless: the generation runs
};

struct HostileCase {
  const char* name;
  Fixture fixture;
  std::function<void(const fs::path&)> mutate;
  Stage stage;
  std::vector<std::string> expect;  // each must appear in the message
};

// --- mutations --------------------------------------------------------------------------------

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}
void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}
std::function<void(const fs::path&)> set_key(std::string file, std::string key, json value) {
  return [=](const fs::path& dir) {
    json j = read_json(dir / file);
    j[key] = value;
    write_text(dir / file, j.dump(2));
  };
}
std::function<void(const fs::path&)> set_text_config_key(std::string key, json value) {
  return [=](const fs::path& dir) {
    const fs::path file = dir / "text_encoder" / "config.json";
    json j = read_json(file);
    if (j.contains("text_config")) j["text_config"][key] = value;
    j[key] = value;
    write_text(file, j.dump(2));
  };
}
std::function<void(const fs::path&)> replace_file(std::string file, std::string text) {
  return [=](const fs::path& dir) { write_text(dir / file, text); };
}
std::function<void(const fs::path&)> truncate_file(std::string file, double keep) {
  return [=](const fs::path& dir) {
    const auto size = fs::file_size(dir / file);
    fs::resize_file(dir / file, static_cast<uintmax_t>(static_cast<double>(size) * keep));
  };
}
std::function<void(const fs::path&)> remove_path(std::string file) {
  return [=](const fs::path& dir) { fs::remove_all(dir / file); };
}
// Rewrites a single-file checkpoint after `edit` changes its tensors.
std::function<void(const fs::path&)> edit_weights(
    std::string file, std::function<void(std::map<std::string, Tensor>&)> edit) {
  return [=](const fs::path& dir) {
    std::map<std::string, Tensor> tensors;
    {
      const auto in = SafetensorsFile::open((dir / file).string());
      for (const auto& name : in.names()) {
        const Tensor t = in.read(name, native_dtype(in.info(name).dtype).value());
        Tensor copy = Tensor::empty(t.shape(), t.dtype());
        std::memcpy(copy.raw_data(), t.raw_data(), t.nbytes());
        tensors[name] = copy;
      }
    }
    edit(tensors);
    write_safetensors((dir / file).string(), tensors);
  };
}

const char* kFluxTransformerWeights = "transformer/diffusion_pytorch_model.safetensors";

std::vector<HostileCase> cases() {
  const Fixture F = Fixture::Flux, Q = Fixture::Qwen;
  const Stage Open = Stage::Open, Tok = Stage::Tokenizers, W = Stage::Weights, Ok = Stage::Accepted;
  return {
      // Components inconsistent with one another.
      {"t5_d_model_vs_joint_attention_dim",
       F,
       set_key("text_encoder_2/config.json", "d_model", 48),
       Open,
       {"text_encoder_2/config.json: d_model = 48", "joint_attention_dim = 32"}},
      {"clip_width_vs_pooled_projection_dim",
       F,
       set_key("transformer/config.json", "pooled_projection_dim", 24),
       Open,
       {"text_encoder/config.json: hidden_size = 32", "pooled_projection_dim = 24"}},
      {"vae_latent_channels_vs_in_channels",
       F,
       set_key("vae/config.json", "latent_channels", 8),
       Open,
       {"vae/config.json: 4 x latent_channels = 32", "in_channels = 64"}},
      {"transformer_out_channels_vs_in_channels",
       F,
       set_key("transformer/config.json", "out_channels", 32),
       Open,
       {"transformer/config.json: out_channels = 32", "in_channels = 64"}},
      {"qwen_text_width_vs_joint_attention_dim",
       Q,
       set_key("transformer/config.json", "joint_attention_dim", 48),
       Open,
       {"text_encoder/config.json: hidden_size = 32", "joint_attention_dim = 48"}},
      {"qwen_vae_z_dim_vs_in_channels",
       Q,
       [](const fs::path& dir) {  // a VAE of 8 latent channels, consistent in itself
         json j = read_json(dir / "vae" / "config.json");
         j["z_dim"] = 8;
         j["latents_mean"] = json(std::vector<double>(8, 0.0));
         j["latents_std"] = json(std::vector<double>(8, 1.0));
         write_text(dir / "vae" / "config.json", j.dump(2));
       },
       Open,
       {"vae/config.json: 4 x z_dim = 32", "in_channels = 16"}},
      // Classes paradiff does not run.
      {"unsupported_pipeline_class",
       F,
       set_key("model_index.json", "_class_name", "StableDiffusionPipeline"),
       Open,
       {"model_index.json", "'StableDiffusionPipeline' is not supported"}},
      {"unsupported_transformer_class",
       F,
       set_key("model_index.json", "transformer",
               json::array({"diffusers", "SD3Transformer2DModel"})),
       Open,
       {"model_index.json", "'transformer' is a SD3Transformer2DModel"}},
      {"unsupported_scheduler_class",
       F,
       set_key("model_index.json", "scheduler", json::array({"diffusers", "DDIMScheduler"})),
       Open,
       {"model_index.json", "'scheduler' is a DDIMScheduler"}},
      {"config_class_disagrees_with_index",
       F,
       set_key("scheduler/scheduler_config.json", "_class_name", "DDIMScheduler"),
       Open,
       {"scheduler_config.json", "DDIMScheduler"}},
      {"qwen_unsupported_text_encoder_class",
       Q,
       set_key("model_index.json", "text_encoder", json::array({"transformers", "T5EncoderModel"})),
       Open,
       {"model_index.json", "'text_encoder' is a T5EncoderModel"}},
      // model_index.json itself.
      {"model_index_missing",
       F,
       remove_path("model_index.json"),
       Open,
       {"has no model_index.json"}},
      {"model_index_garbage",
       F,
       replace_file("model_index.json", "{\"_class_name\": \"Flux"),
       Open,
       {"model_index.json", "invalid JSON"}},
      {"model_index_no_class_name",
       F,
       [](const fs::path& dir) {
         json j = read_json(dir / "model_index.json");
         j.erase("_class_name");
         write_text(dir / "model_index.json", j.dump());
       },
       Open,
       {"model_index.json", "'_class_name'"}},
      {"model_index_component_not_a_pair",
       F,
       set_key("model_index.json", "vae", json::array({"diffusers"})),
       Open,
       {"model_index.json", "component 'vae' must be [library, class]"}},
      // Absurd sizes in configs.
      {"t5_vocab_2_pow_40",
       F,
       set_key("text_encoder_2/config.json", "vocab_size", int64_t{1} << 40),
       Open,
       {"text_encoder_2/config.json", "'vocab_size'", "1099511627776"}},
      {"clip_negative_layer_count",
       F,
       set_key("text_encoder/config.json", "num_hidden_layers", -1),
       Open,
       {"text_encoder/config.json", "'num_hidden_layers'", "-1"}},
      {"transformer_zero_heads",
       F,
       set_key("transformer/config.json", "num_attention_heads", 0),
       Open,
       {"transformer/config.json", "'num_attention_heads'", "got 0"}},
      {"clip_head_dim_not_dividing",
       F,
       set_key("text_encoder/config.json", "num_attention_heads", 3),
       Open,
       {"text_encoder/config.json",
        "hidden_size (32) must be a multiple of num_attention_heads (3)"}},
      {"transformer_rope_axes_not_head_dim",
       F,
       set_key("transformer/config.json", "axes_dims_rope", json::array({4, 4, 4})),
       Open,
       {"transformer/config.json", "axes_dims_rope must sum to attention_head_dim (16)"}},
      {"transformer_layers_as_text",
       F,
       set_key("transformer/config.json", "num_layers", "two"),
       Open,
       {"transformer/config.json", "'num_layers' must be an integer", "\"two\""}},
      {"vae_groups_not_dividing_channels",
       F,
       set_key("vae/config.json", "norm_num_groups", 5),
       Open,
       {"vae/config.json", "norm_num_groups (5)"}},
      {"config_not_an_object",
       F,
       replace_file("vae/config.json", "[1, 2, 3]"),
       Open,
       {"vae/config.json", "not a JSON object"}},
      {"config_duplicate_key",
       F,
       replace_file("transformer/config.json", "{\"num_layers\": 1, \"num_layers\": 9}"),
       Open,
       {"transformer/config.json", "duplicate key", "num_layers"}},
      {"qwen_kv_heads_not_dividing",
       Q,
       set_text_config_key("num_key_value_heads", 3),
       Open,
       {"text_encoder/config.json", "num_key_value_heads (3)"}},
      // Scheduler values out of range.
      {"scheduler_negative_shift",
       F,
       set_key("scheduler/scheduler_config.json", "shift", -3.0),
       Open,
       {"scheduler_config.json", "shift", "-3"}},
      {"scheduler_zero_train_timesteps",
       F,
       set_key("scheduler/scheduler_config.json", "num_train_timesteps", 0),
       Open,
       {"scheduler_config.json", "'num_train_timesteps'", "got 0"}},
      {"scheduler_equal_seq_lens",
       F,
       set_key("scheduler/scheduler_config.json", "max_image_seq_len", 256),
       Open,
       {"scheduler_config.json", "base_image_seq_len"}},
      {"scheduler_unknown_time_shift",
       F,
       set_key("scheduler/scheduler_config.json", "time_shift_type", "cubic"),
       Open,
       {"scheduler_config.json", "time_shift_type", "cubic"}},
      {"qwen_scheduler_truncated",
       Q,
       truncate_file("scheduler/scheduler_config.json", 0.5),
       Open,
       {"scheduler_config.json", "invalid JSON"}},
      // Missing files.
      {"component_folder_missing", F, remove_path("vae"), Open, {"has no vae/ component"}},
      {"config_missing",
       F,
       remove_path("transformer/config.json"),
       Open,
       {"transformer", "has no config.json"}},
      {"weights_missing",
       F,
       remove_path(kFluxTransformerWeights),
       Open,
       {"transformer: no safetensors checkpoint found", "diffusion_pytorch_model.safetensors"}},
      {"qwen_text_weights_missing",
       Q,
       remove_path("text_encoder/model.safetensors"),
       Open,
       {"text_encoder: no safetensors checkpoint found", "model.safetensors"}},
      {"clip_vocab_missing", F, remove_path("tokenizer/vocab.json"), Tok, {"vocab.json"}},
      {"t5_spiece_missing", F, remove_path("tokenizer_2/spiece.model"), Tok, {"spiece.model"}},
      // Truncated or garbage tokenizer files, each format.
      {"clip_vocab_truncated",
       F,
       truncate_file("tokenizer/vocab.json", 0.5),
       Tok,
       {"tokenizer/vocab.json", "invalid JSON"}},
      {"clip_vocab_not_a_map",
       F,
       replace_file("tokenizer/vocab.json", "[\"a\", \"b\"]"),
       Tok,
       {"tokenizer/vocab.json"}},
      {"clip_merges_garbage",
       F,
       replace_file("tokenizer/merges.txt", "#version: 0.2\nonlyone\n"),
       Tok,
       {"tokenizer/merges.txt", "line 2"}},
      {"t5_spiece_truncated",
       F,
       truncate_file("tokenizer_2/spiece.model", 0.3),
       Tok,
       {"tokenizer_2/spiece.model: cannot load the SentencePiece model (is the file truncated"}},
      {"t5_spiece_garbage",
       F,
       replace_file("tokenizer_2/spiece.model", std::string(64, '\xff')),
       Tok,
       {"tokenizer_2/spiece.model: cannot load the SentencePiece model (is the file truncated"}},
      {"tokenizer_config_garbage",
       F,
       replace_file("tokenizer_2/tokenizer_config.json", "{{"),
       Tok,
       {"tokenizer_2/tokenizer_config.json", "invalid JSON"}},
      {"qwen_tokenizer_json_truncated",
       Q,
       truncate_file("tokenizer/tokenizer.json", 0.5),
       Tok,
       {"tokenizer/tokenizer.json", "invalid JSON"}},
      {"qwen_tokenizer_json_wrong_model",
       Q,
       replace_file("tokenizer/tokenizer.json", "{\"model\": {\"type\": \"WordPiece\"}}"),
       Tok,
       {"tokenizer/tokenizer.json"}},
      // Weights of the wrong shape or dtype, missing, extra, truncated.
      {"weight_wrong_shape",
       F,
       edit_weights(kFluxTransformerWeights,
                    [](auto& t) {
                      t["x_embedder.weight"] = Tensor::zeros({32, 63}, DType::F32);
                    }),
       W,
       {"diffusion_pytorch_model.safetensors", "x_embedder.weight", "[32, 63]"}},
      {"weight_wrong_dtype",
       F,
       edit_weights(kFluxTransformerWeights,
                    [](auto& t) { t["x_embedder.bias"] = Tensor::zeros({32}, DType::I64); }),
       W,
       {"diffusion_pytorch_model.safetensors", "x_embedder.bias", "I64"}},
      {"weight_missing",
       F,
       edit_weights(kFluxTransformerWeights, [](auto& t) { t.erase("proj_out.weight"); }),
       W,
       {"diffusion_pytorch_model.safetensors", "missing tensor 'proj_out.weight'"}},
      {"weight_extra",
       F,
       edit_weights(kFluxTransformerWeights,
                    [](auto& t) { t["stray.weight"] = Tensor::zeros({2}, DType::F32); }),
       W,
       {"diffusion_pytorch_model.safetensors", "stray.weight"}},
      {"weights_truncated",
       F,
       truncate_file(kFluxTransformerWeights, 0.5),
       W,
       {"diffusion_pytorch_model.safetensors"}},
      // Harmless: extra files, an absent optional component, a stray pickle beside safetensors.
      {"extra_files_accepted",
       F,
       [](const fs::path& dir) {
         write_text(dir / "README.md", "# a model card\n");
         write_text(dir / "transformer" / "diffusion_pytorch_model.bin", "pickle");
         fs::create_directory(dir / "notes");
         json j = read_json(dir / "model_index.json");
         j["image_encoder"] = json::array({nullptr, nullptr});
         j["requires_safety_checker"] = false;
         write_text(dir / "model_index.json", j.dump());
       },
       Ok,
       {}},
  };
}

std::string fixture_path(Fixture f) {
  return testing::source_path(f == Fixture::Flux ? "tests/fixtures/flux_pipeline/tiny"
                                                 : "tests/fixtures/qwen_image_pipeline/tiny");
}

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Open:
      return "open";
    case Stage::Tokenizers:
      return "tokenizers";
    case Stage::Weights:
      return "weights";
    case Stage::Accepted:
      return "accepted";
  }
  return "?";
}

// Runs a one-step 32x32 generation; returns the stage that threw and its message.
std::pair<Stage, std::string> run_case(const std::string& folder, bool* models_loaded) {
  std::unique_ptr<DiffusionPipeline> pipe;
  try {
    pipe = load_pipeline(folder, PipelineRuntime{});
  } catch (const Error& e) {
    return {Stage::Open, e.what()};
  }
  try {
    GenerationOptions o;
    o.height = o.width = 32;
    o.num_inference_steps = 1;
    o.max_sequence_length = 8;
    o = pipe->resolve(o);
    const Conditioning c = pipe->encode_prompt({"a red circle"}, {}, o);
    pipe->decode(pipe->denoise(c, pipe->prepare_latents(o), o), o);
  } catch (const Error& e) {
    *models_loaded = false;
    for (const char* m : {"text_encoder", "text_encoder_2", "transformer", "vae"})
      *models_loaded = *models_loaded || pipe->components().load_count(m) > 0;
    const std::string what = e.what();
    const bool tokenizer_stage = !*models_loaded;
    return {tokenizer_stage ? Stage::Tokenizers : Stage::Weights, what};
  }
  return {Stage::Accepted, ""};
}

TEST(HostileFolders, EachIsRefusedAtItsStageNamingFileAndKey) {
  const auto table = cases();
  ASSERT_GE(table.size(), 30u);
  int refused = 0;
  for (const HostileCase& c : table) {
    SCOPED_TRACE(c.name);
    testing::TempDir tmp;
    const fs::path dir = fs::path(tmp.path()) / "pipeline";
    fs::copy(fixture_path(c.fixture), dir, fs::copy_options::recursive);
    c.mutate(dir);
    bool models_loaded = false;
    const auto [stage, message] = run_case(dir.string(), &models_loaded);
    std::printf("  %-40s %-10s %s\n", c.name, stage_name(stage), message.c_str());
    EXPECT_STREQ(stage_name(stage), stage_name(c.stage)) << message;
    for (const std::string& part : c.expect)
      EXPECT_NE(message.find(part), std::string::npos)
          << "missing \"" << part << "\" in: " << message;
    refused += stage != Stage::Accepted;
  }
  std::printf("  %d of %zu cases refused\n", refused, table.size());
}

}  // namespace
}  // namespace paradiff::pipeline
