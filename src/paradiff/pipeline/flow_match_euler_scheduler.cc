// Matching diffusers' float32 schedule to the last bit needs every rounding where NumPy and
// torch have one: no fused multiply-adds (g++ contracts a * b + c by default, even with
// -std=c++20).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#include "paradiff/pipeline/flow_match_euler_scheduler.h"

#include <cmath>
#include <filesystem>
#include <type_traits>

namespace paradiff::pipeline {

double calculate_shift(int64_t image_seq_len, int64_t base_seq_len, int64_t max_seq_len,
                       double base_shift, double max_shift) {
  PARADIFF_CHECK(max_seq_len != base_seq_len,
                 "calculate_shift: max_image_seq_len and base_image_seq_len are both ",
                 base_seq_len, " (the line through them is undefined)");
  const double m = (max_shift - base_shift) / static_cast<double>(max_seq_len - base_seq_len);
  const double b = base_shift - m * static_cast<double>(base_seq_len);
  return static_cast<double>(image_seq_len) * m + b;
}

std::vector<double> numpy_linspace(double start, double stop, int64_t num) {
  PARADIFF_CHECK(num >= 0, "linspace: number of samples must be >= 0, got ", num);
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 0) return y;
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / static_cast<double>(div);
    for (int64_t i = 0; i < num; ++i) {
      // NumPy divides first when the step underflows to 0 (denormal ranges).
      y[i] = step == 0.0 ? (static_cast<double>(i) / static_cast<double>(div)) * delta
                         : static_cast<double>(i) * step;
    }
  } else {
    y[0] = 0.0 * delta;
  }
  for (double& v : y) v = v + start;
  if (num > 1) y.back() = stop;
  return y;
}

// ---------------------------------------------------------------------------------------------
// Config

FlowMatchEulerDiscreteSchedulerConfig FlowMatchEulerDiscreteSchedulerConfig::from_json(
    const JsonConfig& json) {
  FlowMatchEulerDiscreteSchedulerConfig c;
  c.num_train_timesteps = json.get_int("num_train_timesteps", c.num_train_timesteps, 1, 1 << 24);
  c.shift = json.get_float("shift", c.shift);
  c.use_dynamic_shifting = json.get_bool("use_dynamic_shifting", c.use_dynamic_shifting);
  c.base_shift = json.get_float("base_shift", c.base_shift);
  c.max_shift = json.get_float("max_shift", c.max_shift);
  c.base_image_seq_len = json.get_int("base_image_seq_len", c.base_image_seq_len);
  c.max_image_seq_len = json.get_int("max_image_seq_len", c.max_image_seq_len);
  c.invert_sigmas = json.get_bool("invert_sigmas", c.invert_sigmas);
  c.shift_terminal = json.optional_float("shift_terminal");
  c.use_karras_sigmas = json.get_bool("use_karras_sigmas", c.use_karras_sigmas);
  c.use_exponential_sigmas = json.get_bool("use_exponential_sigmas", c.use_exponential_sigmas);
  c.use_beta_sigmas = json.get_bool("use_beta_sigmas", c.use_beta_sigmas);
  c.time_shift_type = json.get_string("time_shift_type", c.time_shift_type);
  c.stochastic_sampling = json.get_bool("stochastic_sampling", c.stochastic_sampling);
  c.validate(json.name());
  return c;
}

FlowMatchEulerDiscreteSchedulerConfig FlowMatchEulerDiscreteSchedulerConfig::load(
    const std::string& path) {
  return from_json(JsonConfig::load(path));
}

void FlowMatchEulerDiscreteSchedulerConfig::validate(const std::string& where) const {
  PARADIFF_CHECK(num_train_timesteps >= 1, where, ": num_train_timesteps must be >= 1, got ",
                 num_train_timesteps);
  PARADIFF_CHECK(std::isfinite(shift) && shift > 0, where,
                 ": shift must be a positive number, got ", shift);
  PARADIFF_CHECK(time_shift_type == "exponential" || time_shift_type == "linear", where,
                 ": time_shift_type must be \"exponential\" or \"linear\", got \"", time_shift_type,
                 "\"");
  const int schedules = int{use_karras_sigmas} + int{use_exponential_sigmas} + int{use_beta_sigmas};
  PARADIFF_CHECK(schedules <= 1, where,
                 ": only one of use_beta_sigmas, use_exponential_sigmas and use_karras_sigmas "
                 "can be true");
  PARADIFF_CHECK(!use_beta_sigmas, where,
                 ": use_beta_sigmas is not supported (diffusers computes that schedule with "
                 "scipy.stats.beta.ppf); use the default, Karras or exponential sigmas");
  if (shift_terminal) {
    PARADIFF_CHECK(std::isfinite(*shift_terminal) && *shift_terminal < 1.0, where,
                   ": shift_terminal must be below 1, got ", *shift_terminal);
  }
  PARADIFF_CHECK(base_image_seq_len != max_image_seq_len || !use_dynamic_shifting, where,
                 ": base_image_seq_len and max_image_seq_len must differ for dynamic shifting, "
                 "both are ",
                 base_image_seq_len);
}

// ---------------------------------------------------------------------------------------------
// Schedules

namespace {

// The shift (static or dynamic) and the terminal stretch, in T = float (NumPy float32 arrays
// with Python scalars rounded to float32 first) or T = double.
template <typename T>
std::vector<T> shift_schedule(const FlowMatchEulerDiscreteSchedulerConfig& c, double shift,
                              std::optional<double> mu, std::vector<T> s) {
  const T one = 1;
  if (c.use_dynamic_shifting) {
    PARADIFF_CHECK(mu.has_value(),
                   "set_timesteps: `mu` must be passed when use_dynamic_shifting is true");
    // (1/t - 1) ** 1.0 is exactly (1/t - 1).
    const T numerator =
        c.time_shift_type == "exponential" ? static_cast<T>(std::exp(*mu)) : static_cast<T>(*mu);
    for (T& t : s) t = numerator / (numerator + (one / t - one));
  } else {
    const T a = static_cast<T>(shift), b = static_cast<T>(shift - 1.0);
    for (T& t : s) t = (a * t) / (one + b * t);
  }
  if (c.shift_terminal && *c.shift_terminal != 0.0 && !s.empty()) {
    const T scale = (one - s.back()) / static_cast<T>(1.0 - *c.shift_terminal);
    for (T& t : s) t = one - ((one - t) / scale);
  }
  return s;
}

// Karras (rho = 7) or exponential spacing between the ends of `in`, in float64.
template <typename T>
std::vector<double> convert_schedule(const FlowMatchEulerDiscreteSchedulerConfig& c,
                                     const std::vector<T>& in) {
  std::vector<double> out(in.begin(), in.end());
  if (in.empty()) return out;
  const int64_t n = static_cast<int64_t>(in.size());
  const double sigma_min = static_cast<double>(in.back());
  const double sigma_max = static_cast<double>(in.front());
  if (c.use_karras_sigmas) {
    const double rho = 7.0;
    const std::vector<double> ramp = numpy_linspace(0.0, 1.0, n);
    const double min_inv_rho = std::pow(sigma_min, 1.0 / rho);
    const double max_inv_rho = std::pow(sigma_max, 1.0 / rho);
    const double range = min_inv_rho - max_inv_rho;
    for (int64_t i = 0; i < n; ++i) out[i] = std::pow(max_inv_rho + ramp[i] * range, rho);
  } else if (c.use_exponential_sigmas) {
    const std::vector<double> logs = numpy_linspace(std::log(sigma_max), std::log(sigma_min), n);
    for (int64_t i = 0; i < n; ++i) out[i] = std::exp(logs[i]);
  }
  return out;
}

template <typename T>
std::vector<double> full_schedule(const FlowMatchEulerDiscreteSchedulerConfig& c, double shift,
                                  std::optional<double> mu, std::vector<T> s) {
  return convert_schedule(c, shift_schedule(c, shift, mu, std::move(s)));
}

void check_steps(int64_t n) {
  PARADIFF_CHECK(n >= 1, "set_timesteps: num_inference_steps must be >= 1, got ", n);
  PARADIFF_CHECK(n <= (int64_t{1} << 24), "set_timesteps: num_inference_steps ", n,
                 " is unreasonably large");
}

}  // namespace

FlowMatchEulerDiscreteScheduler::FlowMatchEulerDiscreteScheduler(const Config& config)
    : config_(config), shift_(config.shift) {
  config_.validate("scheduler config");
  // The training schedule, in float32 torch arithmetic: t = T, T-1, ..., 1; sigma = t / T;
  // statically shifted unless shifting is dynamic.
  const int64_t n = config_.num_train_timesteps;
  const float nt = static_cast<float>(n);
  auto train_sigma = [&](int64_t t) {
    float s = static_cast<float>(t) / nt;
    if (!config_.use_dynamic_shifting) {
      const float a = static_cast<float>(shift_), b = static_cast<float>(shift_ - 1.0);
      s = (a * s) / (b * s + 1.0f);
    }
    return s;
  };
  sigma_max_ = train_sigma(n);
  sigma_min_ = train_sigma(1);
}

FlowMatchEulerDiscreteScheduler FlowMatchEulerDiscreteScheduler::from_pretrained(
    const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= "scheduler_config.json";
  PARADIFF_CHECK(std::filesystem::exists(p), "scheduler config '", p.string(), "' does not exist");
  const JsonConfig json = JsonConfig::load(p.string());
  const std::string cls = json.get_string("_class_name", "FlowMatchEulerDiscreteScheduler");
  PARADIFF_CHECK(cls == "FlowMatchEulerDiscreteScheduler", p.string(), ": _class_name is \"", cls,
                 "\", expected \"FlowMatchEulerDiscreteScheduler\"");
  return FlowMatchEulerDiscreteScheduler(Config::from_json(json));
}

void FlowMatchEulerDiscreteScheduler::set_shift(double shift) {
  PARADIFF_CHECK(std::isfinite(shift) && shift > 0, "set_shift: shift must be positive, got ",
                 shift);
  shift_ = shift;
}

double FlowMatchEulerDiscreteScheduler::mu_for(int64_t image_seq_len) const {
  return calculate_shift(image_seq_len, config_.base_image_seq_len, config_.max_image_seq_len,
                         config_.base_shift, config_.max_shift);
}

void FlowMatchEulerDiscreteScheduler::set_timesteps(int64_t num_inference_steps,
                                                    std::optional<double> mu) {
  check_steps(num_inference_steps);
  set_timesteps_from_sigmas(
      numpy_linspace(1.0, 1.0 / static_cast<double>(num_inference_steps), num_inference_steps), mu);
}

void FlowMatchEulerDiscreteScheduler::set_timesteps_from_sigmas(const std::vector<double>& sigmas,
                                                                std::optional<double> mu) {
  check_steps(static_cast<int64_t>(sigmas.size()));
  // np.array(sigmas).astype(np.float32), then float32 arithmetic throughout.
  std::vector<float> s(sigmas.begin(), sigmas.end());
  finish_timesteps(full_schedule(config_, shift_, mu, std::move(s)));
}

void FlowMatchEulerDiscreteScheduler::set_timesteps_default(int64_t num_inference_steps,
                                                            std::optional<double> mu) {
  check_steps(num_inference_steps);
  const double t = static_cast<double>(config_.num_train_timesteps);
  std::vector<double> s = numpy_linspace(static_cast<double>(sigma_max_) * t,
                                         static_cast<double>(sigma_min_) * t, num_inference_steps);
  for (double& v : s) v = v / t;
  finish_timesteps(full_schedule(config_, shift_, mu, std::move(s)));
}

void FlowMatchEulerDiscreteScheduler::finish_timesteps(const std::vector<double>& schedule) {
  const float t = static_cast<float>(config_.num_train_timesteps);
  sigmas_.assign(schedule.size(), 0.0f);
  timesteps_.assign(schedule.size(), 0.0f);
  for (size_t i = 0; i < schedule.size(); ++i) {
    float s = static_cast<float>(schedule[i]);
    if (config_.invert_sigmas) s = 1.0f - s;
    PARADIFF_CHECK(std::isfinite(s), "set_timesteps: sigma ", i, " is not finite (", s,
                   "); check mu, shift and the sigmas passed");
    sigmas_[i] = s;
    timesteps_[i] = s * t;
  }
  sigmas_.push_back(config_.invert_sigmas ? 1.0f : 0.0f);
}

float FlowMatchEulerDiscreteScheduler::transformer_timestep(int64_t step_index,
                                                            DType latents_dtype) const {
  PARADIFF_CHECK(step_index >= 0 && step_index < num_inference_steps(), "step index ", step_index,
                 " is outside the schedule of ", num_inference_steps(), " steps");
  const float t = timesteps_[step_index];
  switch (latents_dtype) {
    case DType::F32:
      return t / 1000.0f;
    case DType::BF16:
      return bf16_to_float(float_to_bf16(bf16_to_float(float_to_bf16(t)) / 1000.0f));
    case DType::F16:
      return f16_to_float(float_to_f16(f16_to_float(float_to_f16(t)) / 1000.0f));
    default:
      break;
  }
  throw Error(str_cat("transformer_timestep: latents must be floating point, got ",
                      dtype_name(latents_dtype)));
}

// ---------------------------------------------------------------------------------------------
// step

namespace {

// A float rounded to T and back (the 16-bit types), or unchanged (float).
template <typename T>
inline float round_to(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return static_cast<float>(to_double(from_float<T>(v)));
  }
}

template <typename TM, typename TS, typename TO>
void euler_step(const TM* v, const TS* x, TO* out, int64_t n, float dt) {
  // torch rounds the 0-dim float32 dt to the model output's dtype, multiplies in float and
  // rounds the product to that dtype; the sum with the float32 sample is float32.
  const float d = round_to<TM>(dt);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float product = round_to<TM>(d * static_cast<float>(to_double(v[i])));
    const float sum = static_cast<float>(to_double(x[i])) + product;
    out[i] = from_float<TO>(sum);
  }
}

template <typename TM, typename TS, typename TO>
void stochastic_step(const TM* v, const TS* x, const float* noise, TO* out, int64_t n, float sigma,
                     float sigma_next) {
  const float s = round_to<TM>(sigma);
  const float keep = 1.0f - sigma_next;
  for (int64_t i = 0; i < n; ++i) {
    const float x0 =
        static_cast<float>(to_double(x[i])) - round_to<TM>(s * static_cast<float>(to_double(v[i])));
    const float a = keep * x0;
    const float b = sigma_next * noise[i];
    out[i] = from_float<TO>(a + b);
  }
}

bool is_float_type(DType d) {
  return d == DType::F32 || d == DType::BF16 || d == DType::F16;
}

}  // namespace

void FlowMatchEulerDiscreteScheduler::check_step(const Tensor& model_output, int64_t step_index,
                                                 const Tensor& sample) const {
  PARADIFF_CHECK(!timesteps_.empty(), "scheduler step called before set_timesteps");
  PARADIFF_CHECK(step_index >= 0 && step_index < num_inference_steps(), "scheduler step index ",
                 step_index, " is outside the schedule of ", num_inference_steps(), " steps");
  PARADIFF_CHECK(model_output.defined() && sample.defined(),
                 "scheduler step needs model_output and sample");
  PARADIFF_CHECK(is_float_type(model_output.dtype()),
                 "scheduler step: model_output must be f32, bf16 or f16, got ",
                 model_output.describe());
  PARADIFF_CHECK(is_float_type(sample.dtype()),
                 "scheduler step: sample must be f32, bf16 or f16, got ", sample.describe());
  PARADIFF_CHECK(model_output.shape() == sample.shape(), "scheduler step: model_output ",
                 model_output.describe(), " and sample ", sample.describe(),
                 " must have the same shape");
}

void FlowMatchEulerDiscreteScheduler::step_inplace(const Tensor& model_output, int64_t step_index,
                                                   Tensor& sample, Generator* generator) const {
  check_step(model_output, step_index, sample);
  PARADIFF_CHECK(sample.dtype() == model_output.dtype(), "scheduler step_inplace: sample ",
                 sample.describe(), " must have model_output's dtype (",
                 dtype_name(model_output.dtype()),
                 "), since diffusers returns prev_sample in that dtype");
  const float sigma = sigmas_[step_index], sigma_next = sigmas_[step_index + 1];
  const int64_t n = sample.numel();
  Tensor noise;
  if (config_.stochastic_sampling) {
    PARADIFF_CHECK(generator != nullptr,
                   "scheduler step: stochastic_sampling draws noise and needs a Generator "
                   "(diffusers would use torch's global RNG, which cannot be reproduced)");
    noise = generator->randn(sample.shape(), DType::F32);
  }
  dispatch_dtype(model_output.dtype(), [&](auto tm) {
    using TM = decltype(tm);
    dispatch_dtype(sample.dtype(), [&](auto ts) {
      using TS = decltype(ts);
      if constexpr (!std::is_same_v<TM, int64_t> && !std::is_same_v<TS, int64_t>) {
        const TM* v = static_cast<const TM*>(model_output.raw_data());
        TS* x = static_cast<TS*>(sample.raw_data());
        // TS == TM here; each element is read before it is written.
        if (config_.stochastic_sampling) {
          stochastic_step<TM, TS, TS>(v, x, noise.data<float>(), x, n, sigma, sigma_next);
        } else {
          euler_step<TM, TS, TS>(v, x, x, n, sigma_next - sigma);
        }
      }
    });
  });
}

Tensor FlowMatchEulerDiscreteScheduler::step(const Tensor& model_output, int64_t step_index,
                                             const Tensor& sample, Generator* generator) const {
  check_step(model_output, step_index, sample);
  Tensor out = Tensor::empty(model_output.shape(), model_output.dtype());
  const float sigma = sigmas_[step_index], sigma_next = sigmas_[step_index + 1];
  const int64_t n = sample.numel();
  Tensor noise;
  if (config_.stochastic_sampling) {
    PARADIFF_CHECK(generator != nullptr,
                   "scheduler step: stochastic_sampling draws noise and needs a Generator "
                   "(diffusers would use torch's global RNG, which cannot be reproduced)");
    noise = generator->randn(sample.shape(), DType::F32);
  }
  dispatch_dtype(model_output.dtype(), [&](auto tm) {
    using TM = decltype(tm);
    dispatch_dtype(sample.dtype(), [&](auto ts) {
      using TS = decltype(ts);
      if constexpr (!std::is_same_v<TM, int64_t> && !std::is_same_v<TS, int64_t>) {
        const TM* v = static_cast<const TM*>(model_output.raw_data());
        const TS* x = static_cast<const TS*>(sample.raw_data());
        TM* o = static_cast<TM*>(out.raw_data());
        if (config_.stochastic_sampling) {
          stochastic_step<TM, TS, TM>(v, x, noise.data<float>(), o, n, sigma, sigma_next);
        } else {
          euler_step<TM, TS, TM>(v, x, o, n, sigma_next - sigma);
        }
      }
    });
  });
  return out;
}

}  // namespace paradiff::pipeline
