// diffusers' FlowMatchEulerDiscreteScheduler (scheduling_flow_match_euler_discrete.py), the
// scheduler of every FLUX.1 pipeline, with its scheduler_config.json keys and defaults.
//
// Precision follows diffusers step by step, because the transformer sees the timesteps and a
// last-bit difference in a sigma changes every later latent:
// - FluxPipeline passes sigmas = np.linspace(1.0, 1/N, N) (float64); set_timesteps casts them
//   to float32 and shifts them in float32 numpy arithmetic (Python scalars such as e^mu and
//   shift - 1 are rounded to float32 first, as NumPy 2 does).
// - Called without sigmas (other pipelines), the schedule is np.linspace(sigma_max·T,
//   sigma_min·T, N) / T in float64, shifted in float64, then rounded to float32.
// - Karras and exponential schedules are computed in float64 and rounded to float32.
// - timesteps = float32(sigma) · T in float32; a final sigma 0 (1 with invert_sigmas) is
//   appended.
// The results match diffusers to the last bit in our fixtures (tests/pipeline/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "paradiff/core/random.h"
#include "paradiff/core/tensor.h"
#include "paradiff/io/json_config.h"

namespace paradiff::pipeline {

// FluxPipeline's calculate_shift: the dynamic-shifting exponent mu for an image of
// `image_seq_len` packed tokens, a line through (base_seq_len, base_shift) and
// (max_seq_len, max_shift), in double as Python computes it.
double calculate_shift(int64_t image_seq_len, int64_t base_seq_len = 256,
                       int64_t max_seq_len = 4096, double base_shift = 0.5,
                       double max_shift = 1.15);

// np.linspace(start, stop, num) in float64, bit for bit (start + i·step, the last value = stop).
std::vector<double> numpy_linspace(double start, double stop, int64_t num);

// scheduler_config.json, diffusers' keys and defaults.
struct FlowMatchEulerDiscreteSchedulerConfig {
  int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5;
  double max_shift = 1.15;
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  bool invert_sigmas = false;
  std::optional<double> shift_terminal;  // null/absent: none
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_beta_sigmas = false;  // rejected: diffusers computes it with scipy's beta.ppf
  std::string time_shift_type = "exponential";  // or "linear"
  bool stochastic_sampling = false;

  // Reads the keys above (unknown keys such as _class_name are ignored, as diffusers does)
  // and validates them; errors name the file and the key.
  static FlowMatchEulerDiscreteSchedulerConfig from_json(const JsonConfig& json);
  static FlowMatchEulerDiscreteSchedulerConfig load(const std::string& path);
  void validate(const std::string& where) const;
};

class FlowMatchEulerDiscreteScheduler {
 public:
  using Config = FlowMatchEulerDiscreteSchedulerConfig;

  explicit FlowMatchEulerDiscreteScheduler(const Config& config = Config());
  // A diffusers `scheduler/` folder (scheduler_config.json) or the JSON file itself.
  static FlowMatchEulerDiscreteScheduler from_pretrained(const std::string& path);

  const Config& config() const { return config_; }
  double shift() const { return shift_; }
  void set_shift(double shift);  // diffusers' set_shift: used by later set_timesteps calls
  // The training schedule's ends (after the static shift), as float32 values.
  float sigma_min() const { return sigma_min_; }
  float sigma_max() const { return sigma_max_; }

  // calculate_shift with this config's base/max sequence lengths and shifts, as FluxPipeline
  // calls it; image_seq_len = (H/16)·(W/16) packed latent tokens.
  double mu_for(int64_t image_seq_len) const;

  // What FluxPipeline does: set_timesteps(sigmas=np.linspace(1.0, 1/N, N), mu=mu). `mu` is
  // required when use_dynamic_shifting is true and ignored otherwise.
  void set_timesteps(int64_t num_inference_steps, std::optional<double> mu = std::nullopt);
  // set_timesteps(sigmas=sigmas, mu=mu): custom sigmas (rounded to float32 first).
  void set_timesteps_from_sigmas(const std::vector<double>& sigmas,
                                 std::optional<double> mu = std::nullopt);
  // set_timesteps(num_inference_steps, mu=mu) without sigmas: the scheduler's own schedule,
  // used by pipelines other than FluxPipeline.
  void set_timesteps_default(int64_t num_inference_steps, std::optional<double> mu = std::nullopt);

  int64_t num_inference_steps() const { return static_cast<int64_t>(timesteps_.size()); }
  // N timesteps (sigma · num_train_timesteps) and N + 1 sigmas (the last is 0, or 1 when
  // invert_sigmas), float32 as diffusers holds them.
  const std::vector<float>& timesteps() const { return timesteps_; }
  const std::vector<float>& sigmas() const { return sigmas_; }

  // The `timestep` FluxPipeline gives the transformer at step i: t.to(latents dtype) / 1000,
  // computed in that dtype (F32, or BF16: both roundings to bf16), returned as a float.
  float transformer_timestep(int64_t step_index, DType latents_dtype = DType::F32) const;

  // One Euler step, diffusers' step(model_output, timesteps[i], sample) at step index i:
  // prev = sample + (sigma[i+1] - sigma[i]) · model_output, with sample upcast to float32 and,
  // as in torch, the product rounded to model_output's dtype (for bf16/f16 the 0-dim dt is
  // rounded to that dtype too); the result is returned in model_output's dtype.
  // model_output and sample: same shape, each F32, BF16 or F16. With stochastic_sampling,
  // prev = (1 - sigma[i+1])·x0 + sigma[i+1]·noise, x0 = sample - sigma[i]·model_output, with
  // noise = randn_tensor(shape, generator) in float32; `generator` is then required (diffusers
  // would fall back to torch's global RNG, which cannot be reproduced).
  Tensor step(const Tensor& model_output, int64_t step_index, const Tensor& sample,
              Generator* generator = nullptr) const;
  // The same, writing prev into `sample`, which must then have model_output's dtype.
  void step_inplace(const Tensor& model_output, int64_t step_index, Tensor& sample,
                    Generator* generator = nullptr) const;

 private:
  void finish_timesteps(const std::vector<double>& sigmas_after_schedule);
  void check_step(const Tensor& model_output, int64_t step_index, const Tensor& sample) const;

  Config config_;
  double shift_ = 1.0;
  float sigma_min_ = 0.0f, sigma_max_ = 1.0f;
  std::vector<float> timesteps_;
  std::vector<float> sigmas_;
};

}  // namespace paradiff::pipeline
