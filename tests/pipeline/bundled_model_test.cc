// The bundled model (models/tiny-flux-shapes) draws what the prompt asks for: paradiff's whole
// pipeline generates a few of the model card's evaluation prompts (same seed and steps as
// tools/train_tiny_flux/train.py's eval) and a simple check finds the shape's colour and
// quadrant, like the training script's automatic check (shapes.analyse). Skipped when the folder
// is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "paradiff/pipeline/flux/flux_pipeline.h"
#include "testing/test_util.h"

namespace paradiff::pipeline {
namespace {

struct NamedColor {
  const char* name;
  std::array<float, 3> rgb;  // 0..255, as tools/train_tiny_flux/shapes.py's SHAPE_COLORS
};
constexpr NamedColor kShapeColors[] = {
    {"red", {220, 40, 40}},     {"orange", {245, 140, 20}}, {"yellow", {245, 215, 40}},
    {"green", {40, 170, 70}},   {"blue", {40, 90, 220}},    {"purple", {140, 60, 190}},
    {"white", {245, 245, 245}}, {"black", {20, 20, 20}},
};

struct Found {
  std::string color;  // "" when no foreground
  double cx = 0, cy = 0;
};

// image: (1, 3, H, W) in [0, 1]. Background = per-channel median of the 4-pixel border;
// foreground = pixels more than 60 (RGB, 0..255) away from it; the most frequent nearest palette
// colour among them and the centroid of its pixels.
Found analyse(const Tensor& image) {
  const int64_t H = image.shape()[2], W = image.shape()[3];
  const float* p = image.data<float>();
  auto px = [&](int64_t c, int64_t y, int64_t x) { return 255.f * p[(c * H + y) * W + x]; };
  std::array<float, 3> bg{};
  for (int64_t c = 0; c < 3; ++c) {
    std::vector<float> border;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        if (y < 4 || y >= H - 4 || x < 4 || x >= W - 4) border.push_back(px(c, y, x));
    std::nth_element(border.begin(), border.begin() + border.size() / 2, border.end());
    bg[c] = border[border.size() / 2];
  }
  constexpr size_t kColors = std::size(kShapeColors);
  std::array<int64_t, kColors> count{};
  std::array<double, kColors> sx{}, sy{};
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const std::array<float, 3> v = {px(0, y, x), px(1, y, x), px(2, y, x)};
      auto dist = [&](const std::array<float, 3>& ref) {
        return std::hypot(v[0] - ref[0], v[1] - ref[1], v[2] - ref[2]);
      };
      if (dist(bg) <= 60.f) continue;
      size_t best = 0;
      for (size_t k = 1; k < kColors; ++k)
        if (dist(kShapeColors[k].rgb) < dist(kShapeColors[best].rgb)) best = k;
      ++count[best];
      sx[best] += x;
      sy[best] += y;
    }
  const size_t k = std::max_element(count.begin(), count.end()) - count.begin();
  if (count[k] < 0.003 * H * W) return {};
  return {kShapeColors[k].name, sx[k] / count[k] / W, sy[k] / count[k] / H};
}

TEST(BundledModel, DrawsTheColourAndPlaceThePromptAsksFor) {
  const std::string folder = testing::source_path("models/tiny-flux-shapes");
  if (!std::filesystem::exists(folder + "/model_index.json"))
    GTEST_SKIP() << folder << " is not there (see tools/train_tiny_flux)";
  struct Case {
    const char* prompt;
    uint64_t seed;  // the eval's seed for this prompt (its index in EVAL_PROMPTS)
    const char* color;
    bool top, left;
  };
  const Case cases[] = {
      {"a large red circle at the top left on a white background", 0, "red", true, true},
      {"a large blue square at the bottom right on a white background", 1, "blue", false, false},
      {"a large red triangle at the top right on a light blue background", 7, "red", true, false},
      {"a large purple star at the top left on a light blue background", 12, "purple", true, true},
  };
  FluxPipeline pipe(folder, DType::F32);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.prompt);
    GenerationOptions o;
    o.height = o.width = 256;
    o.num_inference_steps = 28;
    o.max_sequence_length = 32;
    o.seed = c.seed;
    o = pipe.resolve(o);
    const Tensor latents =
        pipe.denoise(pipe.encode_prompt({c.prompt}, {}, o), pipe.prepare_latents(o), o);
    const Found f = analyse(pipe.decode(latents, o));
    EXPECT_EQ(f.color, c.color);
    EXPECT_EQ(f.cy < 0.5, c.top) << "centroid y " << f.cy;
    EXPECT_EQ(f.cx < 0.5, c.left) << "centroid x " << f.cx;
  }
}

}  // namespace
}  // namespace paradiff::pipeline
