// FlowMatchEulerDiscreteScheduler against diffusers (tests/fixtures/scheduler, made by
// tools/make_fixtures/make_vae_scheduler_fixtures.py): timesteps and sigmas for FluxPipeline's
// call, the scheduler's own default schedule and custom sigmas, over static and dynamic
// shifting, linear time shift, terminal stretch, inverted, Karras and exponential schedules;
// the timestep FluxPipeline hands the transformer; step() in f32/bf16/f16 and stochastic.
#include "paradiff/pipeline/flow_match_euler_scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "paradiff/io/safetensors.h"
#include "testing/temp_dir.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

std::string fixture(const std::string& name) {
  return testing::source_path("tests/fixtures/scheduler/" + name);
}

const nlohmann::json& cases_json() {
  static const nlohmann::json j = JsonConfig::load(fixture("cases.json")).root();
  return j;
}

FlowMatchEulerDiscreteSchedulerConfig config_named(const std::string& name) {
  return FlowMatchEulerDiscreteSchedulerConfig::from_json(
      JsonConfig::parse(cases_json().at("configs").at(name).dump(), name));
}

// Largest |ours - theirs| / max(1, |theirs|), and how many values differ at all.
struct Diff {
  double worst = 0;
  int differing = 0;
};
Diff compare(const std::vector<float>& ours, const nlohmann::json& theirs) {
  Diff d;
  EXPECT_EQ(ours.size(), theirs.size());
  for (size_t i = 0; i < std::min(ours.size(), theirs.size()); ++i) {
    const double t = theirs[i].get<double>();
    if (static_cast<double>(ours[i]) != t) ++d.differing;
    d.worst = std::max(d.worst, std::abs(ours[i] - t) / std::max(1.0, std::abs(t)));
  }
  return d;
}

TEST(FlowMatchEulerScheduler, TimestepsAndSigmasMatchDiffusers) {
  int exact_cases = 0, total = 0;
  for (const auto& c : cases_json().at("cases")) {
    const std::string cfg = c.at("config"), mode = c.at("mode");
    const int64_t n = c.at("steps"), seq = c.at("image_seq_len");
    SCOPED_TRACE(str_cat(cfg, " ", mode, " N=", n, " seq=", seq));
    FlowMatchEulerDiscreteScheduler s(config_named(cfg));
    EXPECT_EQ(s.sigma_min(), c.at("sigma_min").get<double>());
    EXPECT_EQ(s.sigma_max(), c.at("sigma_max").get<double>());
    const double mu = s.mu_for(seq);
    EXPECT_EQ(mu, c.at("mu").get<double>());  // calculate_shift, bit for bit in double
    if (mode == "flux") {
      s.set_timesteps(n, mu);
    } else if (mode == "default") {
      s.set_timesteps_default(n, mu);
    } else {
      s.set_timesteps_from_sigmas(c.at("custom_sigmas").get<std::vector<double>>(), mu);
    }
    ASSERT_EQ(s.num_inference_steps(), n);
    const Diff t = compare(s.timesteps(), c.at("timesteps"));
    const Diff sg = compare(s.sigmas(), c.at("sigmas"));
    // timesteps are sigma·1000: 1e-6 relative to max(1, |t|).
    EXPECT_LE(t.worst, 1e-6);
    EXPECT_LE(sg.worst, 1e-6);
    // Everything FluxPipeline itself uses is bit-exact; Karras/exponential go through libm's
    // pow/exp where NumPy may use its own SIMD versions.
    const bool libm_schedule = cfg == "karras" || cfg == "exponential_static";
    if (!libm_schedule) {
      EXPECT_EQ(t.differing, 0);
      EXPECT_EQ(sg.differing, 0);
    }
    exact_cases += (t.differing == 0 && sg.differing == 0);
    ++total;
    if (mode == "flux") {
      std::vector<float> f32, bf;
      for (int64_t i = 0; i < n; ++i) {
        f32.push_back(s.transformer_timestep(i, DType::F32));
        bf.push_back(s.transformer_timestep(i, DType::BF16));
      }
      EXPECT_EQ(compare(f32, c.at("transformer_timestep_f32")).differing, 0);
      EXPECT_EQ(compare(bf, c.at("transformer_timestep_bf16")).differing, 0);
    }
  }
  std::printf("  %d of %d schedules bit-exact\n", exact_cases, total);
  EXPECT_GE(total, 15);
}

TEST(FlowMatchEulerScheduler, LoadsSchedulerFolders) {
  for (const char* name : {"flux_dev", "flux_schnell", "karras"}) {
    const auto s = FlowMatchEulerDiscreteScheduler::from_pretrained(fixture(name));
    const auto expected = config_named(name);
    EXPECT_EQ(s.config().use_dynamic_shifting, expected.use_dynamic_shifting) << name;
    EXPECT_EQ(s.config().shift, expected.shift) << name;
    EXPECT_EQ(s.config().use_karras_sigmas, expected.use_karras_sigmas) << name;
    EXPECT_FALSE(s.config().shift_terminal.has_value()) << name;  // null in the file
  }
  // The JSON file itself works as well as its folder.
  EXPECT_TRUE(
      FlowMatchEulerDiscreteScheduler::from_pretrained(fixture("flux_dev/scheduler_config.json"))
          .config()
          .use_dynamic_shifting);
}

struct StepData {
  SafetensorsFile file = SafetensorsFile::open(fixture("step.safetensors"));
  Tensor get(const char* name) const { return file.read(name, DType::F32); }
};

FlowMatchEulerDiscreteScheduler step_scheduler(bool stochastic) {
  auto config = config_named("flux_dev");
  config.stochastic_sampling = stochastic;
  FlowMatchEulerDiscreteScheduler s(config);
  const auto& meta = cases_json().at("step");
  s.set_timesteps(meta.at("steps").get<int64_t>(), s.mu_for(meta.at("image_seq_len")));
  return s;
}

void expect_identical(const Tensor& ours, const Tensor& theirs, const std::string& what) {
  ASSERT_EQ(ours.shape(), theirs.shape()) << what;
  const Tensor mine = ours.to(DType::F32);
  int64_t differing = 0;
  for (int64_t i = 0; i < mine.numel(); ++i)
    differing += std::memcmp(&mine.data<float>()[i], &theirs.data<float>()[i], 4) != 0;
  EXPECT_EQ(differing, 0) << what << ": " << differing << " of " << mine.numel() << " differ";
}

TEST(FlowMatchEulerScheduler, StepMatchesDiffusersExactly) {
  const StepData d;
  const int64_t index = cases_json().at("step").at("step_index");
  const auto s = step_scheduler(false);
  const Tensor v = d.get("model_output"), x = d.get("sample");
  expect_identical(s.step(v, index, x), d.get("prev_f32"), "f32");
  // The bf16/f16 pipeline: latents and model output in the low dtype, result too.
  for (DType dt : {DType::BF16, DType::F16}) {
    const Tensor prev = s.step(v.to(dt), index, x.to(dt));
    EXPECT_EQ(prev.dtype(), dt);
    expect_identical(prev, d.get(dt == DType::BF16 ? "prev_bf16" : "prev_f16"),
                     std::string(dtype_name(dt)));
    Tensor inplace = x.to(dt);
    s.step_inplace(v.to(dt), index, inplace);
    expect_identical(inplace, d.get(dt == DType::BF16 ? "prev_bf16" : "prev_f16"),
                     std::string(dtype_name(dt)) + " in place");
  }
  Tensor inplace = x.clone();
  s.step_inplace(v, index, inplace);
  expect_identical(inplace, d.get("prev_f32"), "f32 in place");
}

TEST(FlowMatchEulerScheduler, StochasticStepWithAGenerator) {
  const StepData d;
  const auto& meta = cases_json().at("step");
  const auto s = step_scheduler(true);
  Generator g(meta.at("stochastic_seed").get<uint64_t>());
  const Tensor prev = s.step(d.get("model_output"), meta.at("step_index"), d.get("sample"), &g);
  EXPECT_LE(testing::relative_error(prev, d.get("prev_stochastic_seed99")), 1e-6);
  try {
    s.step(d.get("model_output"), 1, d.get("sample"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a Generator"), std::string::npos) << e.what();
  }
}

TEST(FlowMatchEulerScheduler, CalculateShiftAndLinspace) {
  EXPECT_DOUBLE_EQ(calculate_shift(256), 0.5);
  EXPECT_DOUBLE_EQ(calculate_shift(4096), 1.15);
  // np.linspace(1.0, 1/3, 3) == [1.0, 0.6666666666666667, 0.3333333333333333]
  const auto l = numpy_linspace(1.0, 1.0 / 3, 3);
  EXPECT_EQ(l[0], 1.0);
  EXPECT_EQ(l[1], 1.0 + 1.0 * ((1.0 / 3 - 1.0) / 2));
  EXPECT_EQ(l[2], 1.0 / 3);
  EXPECT_EQ(numpy_linspace(2.0, 5.0, 1), std::vector<double>{2.0});
  EXPECT_TRUE(numpy_linspace(0, 1, 0).empty());
}

void expect_config_error(const std::string& json, const std::string& needle) {
  try {
    FlowMatchEulerDiscreteSchedulerConfig::from_json(
        JsonConfig::parse(json, "scheduler_config.json"));
    FAIL() << "expected an error for " << json;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(FlowMatchEulerScheduler, RejectsBadConfigs) {
  expect_config_error(R"({"use_beta_sigmas": true})", "use_beta_sigmas is not supported");
  expect_config_error(R"({"use_karras_sigmas": true, "use_exponential_sigmas": true})",
                      "only one of");
  expect_config_error(R"({"time_shift_type": "cosine"})", "time_shift_type must be");
  expect_config_error(R"({"shift": "3.0"})", "'shift'");
  expect_config_error(R"({"num_train_timesteps": 0})", "num_train_timesteps");
  expect_config_error(R"({"use_dynamic_shifting": 1})", "use_dynamic_shifting");
  expect_config_error(R"({"shift_terminal": 1.0})", "shift_terminal must be below 1");
  expect_config_error(R"({"shift": -1})", "shift must be a positive number");

  testing::TempDir dir;
  {
    std::FILE* f = std::fopen(dir.file("scheduler_config.json").c_str(), "w");
    std::fputs(R"({"_class_name": "EulerDiscreteScheduler"})", f);
    std::fclose(f);
  }
  try {
    FlowMatchEulerDiscreteScheduler::from_pretrained(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("EulerDiscreteScheduler"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FlowMatchEulerDiscreteScheduler::from_pretrained(dir.file("missing")), Error);
}

TEST(FlowMatchEulerScheduler, RejectsBadCalls) {
  FlowMatchEulerDiscreteScheduler s(config_named("flux_dev"));
  const Tensor v = Tensor::zeros({1, 4, 64}, DType::F32);
  EXPECT_THROW(s.step(v, 0, v), Error);  // before set_timesteps
  try {
    s.set_timesteps(4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("`mu` must be passed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.set_timesteps(0, 1.0), Error);
  s.set_timesteps(4, s.mu_for(1024));
  EXPECT_THROW(s.step(v, 4, v), Error);   // index past the schedule
  EXPECT_THROW(s.step(v, -1, v), Error);  // negative index
  EXPECT_THROW(s.step(v, 0, Tensor::zeros({1, 4, 63}, DType::F32)), Error);
  EXPECT_THROW(s.step(Tensor::zeros({1, 4, 64}, DType::I64), 0, v), Error);
  Tensor bf = Tensor::zeros({1, 4, 64}, DType::BF16);
  EXPECT_THROW(s.step_inplace(v, 0, bf), Error);  // in place needs model_output's dtype
  EXPECT_THROW(s.transformer_timestep(4), Error);
}

}  // namespace
}  // namespace paradiff::pipeline
