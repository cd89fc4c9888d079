// CPU body of kernels::attention (attention.cc checks the inputs): packs K/V per head and spreads
// query tiles over the OpenMP threads. The arithmetic is in the tile kernels (attention_tile*.cc),
// the implementation of the active instruction-set level (attention_tile.h's tile_kernels()).
#include "paradiff/kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "paradiff/core/memory.h"
#include "paradiff/kernels/cpu/attention_onednn.h"
#include "paradiff/kernels/cpu/attention_tile.h"

namespace paradiff::kernels {
namespace {

using attention_detail::HeadLayout;
using attention_detail::kTileRows;
using attention_detail::TileArgs;
using attention_detail::TileKernels;

// Packed K/V held at once, beyond one head: 16 MiB, small next to a FLUX block's activations.
constexpr size_t kPackBudget = size_t{16} << 20;

// An empty softmax: the identity of merge_attention.
void write_empty(Tensor& out, Tensor* lse) {
  std::memset(out.raw_data(), 0, out.nbytes());  // +0 in both f32 and bf16
  if (lse != nullptr)
    std::fill_n(lse->data<float>(), lse->numel(), -std::numeric_limits<float>::infinity());
}

}  // namespace

std::string_view attention_tile_implementation(DType dtype) {
  const auto& kernels = attention_detail::tile_kernels();
  return dtype == DType::BF16 ? kernels.bf16 : kernels.f32;
}

std::string_view attention_implementation(DType dtype) {
  return attention_detail::onednn_attention_preferred(dtype)
             ? attention_detail::onednn_attention_name(dtype)
             : attention_tile_implementation(dtype);
}

template <>
void impl::attention<DeviceKind::CPU>(const Tensor& q, const Tensor& k, const Tensor& v,
                                      Tensor& out, Tensor* lse, float scale) {
  if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(q.dim(3)));
  if (attention_detail::onednn_attention_preferred(q.dtype()) && q.dim(1) > 0 && k.dim(1) > 0 &&
      q.dim(0) * q.dim(2) > 0) {
    attention_detail::attend_onednn(q, k, v, out, lse, scale);
    return;
  }
  attention_detail::attend(attention_detail::tile_kernels(), q, k, v, out, lse, scale);
}

void attention_detail::attend(const TileKernels& kernels, const Tensor& q, const Tensor& k,
                              const Tensor& v, Tensor& out, Tensor* lse, float scale) {
  const int64_t batch = q.dim(0), sq = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t skv = k.dim(1);
  if (batch * sq * heads == 0) return;
  if (skv == 0) {
    write_empty(out, lse);
    return;
  }

  const HeadLayout layout =
      attention_detail::make_head_layout(q.dtype(), skv, d, kernels.bf16_pairs);
  const bool pairs = layout.packed == DType::BF16;
  const auto pack_fn = pairs ? kernels.pack_bf16_pairs : kernels.pack_f32;
  const auto tile_fn = pairs ? kernels.tile_bf16_pairs : kernels.tile_f32;
  const int64_t bh = batch * heads;
  const int64_t tiles = (sq + kTileRows - 1) / kTileRows;
  const int threads = std::max(1, omp_get_max_threads());
  // Heads packed at a time. Each group costs two barriers, and a barrier stalls every thread
  // when one is slow or preempted, so groups are as large as kPackBudget allows (and at least
  // large enough to give every thread tiles); the budget bounds the extra memory.
  const size_t head_bytes = attention_detail::head_bytes(layout);
  const int64_t by_threads = (4 * threads + tiles - 1) / tiles;
  const auto by_budget = static_cast<int64_t>(kPackBudget / std::max<size_t>(head_bytes, 1));
  const int64_t group = std::clamp<int64_t>(std::max(by_threads, by_budget), 1, bh);
  const std::shared_ptr<std::byte> packed = allocate_bytes(static_cast<size_t>(group) * head_bytes);
  const size_t scratch_bytes = (attention_detail::tile_scratch_bytes(layout) + 63) / 64 * 64;
  const std::shared_ptr<std::byte> scratch = allocate_bytes(scratch_bytes * threads);

  const size_t es = dtype_size(q.dtype()), out_es = dtype_size(out.dtype());
  const int64_t row = heads * d;  // elements between consecutive tokens
  const auto* qp = static_cast<const std::byte*>(q.raw_data());
  const auto* kp = static_cast<const std::byte*>(k.raw_data());
  const auto* vp = static_cast<const std::byte*>(v.raw_data());
  auto* op = static_cast<std::byte*>(out.raw_data());
  float* lp = lse != nullptr ? lse->data<float>() : nullptr;
  const bool negate = scale < 0.0f;
  const float abs_scale = std::abs(scale);

#pragma omp parallel num_threads(threads)
  {
    std::byte* my_scratch =
        scratch.get() + static_cast<size_t>(omp_get_thread_num()) * scratch_bytes;
    for (int64_t g0 = 0; g0 < bh; g0 += group) {
      const int64_t gn = std::min(group, bh - g0);
#pragma omp for schedule(static)
      for (int64_t item = 0; item < gn * layout.blocks; ++item) {
        const int64_t head = g0 + item / layout.blocks, blk = item % layout.blocks;
        const int64_t b = head / heads, h = head % heads;
        const size_t first = static_cast<size_t>((b * skv * heads + h) * d) * es;
        pack_fn(layout, kp + first, vp + first, row, blk, packed.get() + (head - g0) * head_bytes);
      }
      // (implicit barrier: the group is packed before any tile reads it)
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < gn * tiles; ++item) {
        const int64_t head = g0 + item / tiles, i0 = (item % tiles) * kTileRows;
        const int64_t b = head / heads, h = head % heads;
        const int64_t token = (b * sq + i0) * heads + h;  // (b, i0, h) in (B, Sq, H)
        TileArgs args{};
        args.layout = &layout;
        args.q = qp + static_cast<size_t>(token * d) * es;
        args.q_stride = row;
        args.rows = std::min(kTileRows, sq - i0);
        args.negate_q = negate;
        args.scale = abs_scale;
        args.packed_head = packed.get() + (head - g0) * head_bytes;
        args.out = op + static_cast<size_t>(token * d) * out_es;
        args.out_dtype = out.dtype();
        args.out_stride = row;
        args.lse = lp != nullptr ? lp + token : nullptr;
        args.lse_stride = heads;
        args.scratch = my_scratch;
        tile_fn(args);
      }
      // (implicit barrier: no tile still reads the group when the next one is packed over it)
    }
  }
}

}  // namespace paradiff::kernels
