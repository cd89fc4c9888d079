// One FluxTransformer2DModel forward of a mid-size config (inner 1024 = 8 heads x 128, 4 double
// + 8 single blocks, 4096 image + 256 text tokens, random weights), fp32 and bf16 compute, 1 and
// 2 threads: ms, achieved GFLOP/s (FLOPs counted by FluxTransformerConfig::forward_flops), the
// ratio to the rate of a GEMM in the arithmetic the layers really run (bf16 where it is native,
// fp32 where bf16 is stored and computed in fp32: kernels/gemm_mode.h) and to the FMA-loop peak
// of that arithmetic, both measured in the same run, and bf16's time against fp32's. The table's
// "vs f32" compares rows timed minutes apart; after it, bf16 against fp32 is timed again in
// alternating pairs of forwards (bench_util.h), whose ratio the host's drift moves far less.
// Prints figures; asserts nothing.
//
// Sizes can be changed:
//   flux_transformer_bench [image_tokens] [text_tokens] [double] [single] [pairs (default 3)]
#include <omp.h>

#include <cstdio>
#include <cstdlib>

#include <map>
#include <string>
#include <vector>

#include "bench_util.h"
#include "paradiff/kernels/gemm_mode.h"
#include "paradiff/models/flux/flux_transformer.h"

using namespace paradiff;
using models::flux::FluxTransformer2DModel;
using models::flux::FluxTransformerConfig;
using models::flux::FluxTransformerInputs;

namespace {

Tensor filled(const Shape& shape, float scale, uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::F32);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    t.data<float>()[i] = scale * (static_cast<float>(x >> 40) / (1 << 24) - 0.5f);
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  paradiff::bench::print_machine_header();
  const int64_t image_tokens = argc > 1 ? std::atoll(argv[1]) : 4096;
  const int64_t text_tokens = argc > 2 ? std::atoll(argv[2]) : 256;
  FluxTransformerConfig config;
  config.num_attention_heads = 8;
  config.attention_head_dim = 128;
  config.num_layers = argc > 3 ? std::atoll(argv[3]) : 4;
  config.num_single_layers = argc > 4 ? std::atoll(argv[4]) : 8;
  const int pairs = argc > 5 ? std::atoi(argv[5]) : 3;
  config.joint_attention_dim = 4096;
  config.axes_dims_rope = {16, 56, 56};

  int64_t side = 1;
  while ((side + 1) * (side + 1) <= image_tokens) ++side;
  FluxTransformerInputs in;
  in.hidden_states = filled({1, image_tokens, config.in_channels}, 2.0f, 1);
  in.encoder_hidden_states = filled({1, text_tokens, config.joint_attention_dim}, 2.0f, 2);
  in.pooled_projections = filled({1, config.pooled_projection_dim}, 2.0f, 3);
  in.timestep = Tensor::empty({1}, DType::F32);
  in.timestep.data<float>()[0] = 0.5f;
  in.txt_ids = Tensor::zeros({text_tokens, 3}, DType::F32);
  in.img_ids = Tensor::zeros({image_tokens, 3}, DType::F32);
  for (int64_t i = 0; i < image_tokens; ++i) {
    in.img_ids.data<float>()[i * 3 + 1] = static_cast<float>(i / side);
    in.img_ids.data<float>()[i * 3 + 2] = static_cast<float>(i % side);
  }

  const double flops = config.forward_flops(1, image_tokens, text_tokens);
  std::printf(
      "FluxTransformer2DModel forward: inner %lld (%lld heads x %lld), %lld double + %lld "
      "single blocks, %lld image + %lld text tokens, %.1f GFLOP\n",
      (long long)config.inner_dim(), (long long)config.num_attention_heads,
      (long long)config.attention_head_dim, (long long)config.num_layers,
      (long long)config.num_single_layers, (long long)image_tokens, (long long)text_tokens,
      flops / 1e9);
  std::printf("%-6s %-27s %-7s %10s %10s %26s %22s %8s\n", "dtype", "linear/conv path", "threads",
              "ms", "GFLOP/s", "vs GEMM of that arithmetic", "vs its FMA-loop peak", "vs f32");
  std::map<int, double> f32_seconds;
  std::vector<FluxTransformer2DModel> models;  // fp32, then bf16: both timed again in pairs
  models.reserve(2);
  for (DType compute : {DType::F32, DType::BF16}) {
    const auto& model =
        models.emplace_back(FluxTransformer2DModel::with_random_weights(config, compute, 7));
    const kernels::GemmMode mode = kernels::gemm_mode_for(compute);
    const DType arithmetic = kernels::gemm_operand_dtype(mode);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      // The reference: a GEMM shaped like the blocks' MLP (S x C -> 4C).
      const double gemm = bench::onednn_matmul_gflops(
          image_tokens + text_tokens, config.inner_dim(), config.mlp_hidden_dim(), arithmetic);
      const double seconds = bench::time_median([&] { model.forward(in); }, 2, 0.0);
      const double rate = flops / seconds / 1e9;
      // The register-resident FMA loop of the arithmetic (bench_util.h): with AMX, oneDNN's bf16
      // GEMMs run on the tile unit and exceed the vector loop, so that column says n/a there and
      // the GEMM column is the limit that matters.
      const double peak = bench::fma_peak_gflops(arithmetic);
      if (compute == DType::F32) f32_seconds[threads] = seconds;
      char share[32] = "n/a (amx tiles)";
      if (bench::peak_applies(arithmetic))
        std::snprintf(share, sizeof share, "%.1f%% of %.0f", 100 * rate / peak, peak);
      std::printf("%-6s %-27s %-7d %10.1f %10.1f %10.1f%% of %.0f (%s) %22s",
                  std::string(dtype_name(compute)).c_str(),
                  std::string(kernels::gemm_mode_name(mode)).c_str(), threads, seconds * 1e3, rate,
                  100 * rate / gemm, gemm, std::string(dtype_name(arithmetic)).c_str(), share);
      if (compute != DType::F32) std::printf(" %7.2fx", f32_seconds[threads] / seconds);
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  if (pairs > 0) {
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      const bench::PairedRatio ratio = bench::time_ratio_in_pairs(
          [&] { models[0].forward(in); }, [&] { models[1].forward(in); }, pairs);
      std::printf(
          "bf16 vs f32 in %d alternating pairs, %d thread(s): %.2fx (median of the pairs; "
          "%.2f-%.2f)\n",
          pairs, threads, ratio.median, ratio.lowest, ratio.highest);
      std::fflush(stdout);
    }
  }
  return 0;
}
