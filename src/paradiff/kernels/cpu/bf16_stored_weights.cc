#include "paradiff/kernels/cpu/bf16_stored_weights.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/error.h"
#include "paradiff/core/tensor.h"
#include "paradiff/kernels/cpu/bf16_rows_kernel.h"
#include "paradiff/kernels/cpu/onednn_context.h"

namespace paradiff::kernels::cpu {

namespace {

// Elements per OpenMP chunk: large enough that a chunk's stores stream, small enough to balance.
constexpr int64_t kChunk = 1 << 16;

// The loops of the active instruction-set level (core/cpu_isa.h), chosen once.
struct LevelKernels {
  decltype(&isa_portable::widen) widen;
  decltype(&isa_portable::rows_tile) rows_tile;
  int rows_per_tile;
  std::string_view level;
};

const LevelKernels& level_kernels() {
  static const LevelKernels kernels = []() -> LevelKernels {
#if defined(__x86_64__)
    if (active_cpu_isa() >= CpuIsa::Avx512)
      return {isa_avx512::widen, isa_avx512::rows_tile, isa_avx512::rows_per_tile(), "avx512"};
    if (active_cpu_isa() >= CpuIsa::Avx2)
      return {isa_avx2::widen, isa_avx2::rows_tile, isa_avx2::rows_per_tile(), "avx2"};
#endif
    return {isa_portable::widen, isa_portable::rows_tile, isa_portable::rows_per_tile(),
            "portable"};
  }();
  return kernels;
}

Tensor& scratch() {
  thread_local Tensor buffer;
  return buffer;
}

}  // namespace

void widen_bf16(const bf16* src, float* dst, int64_t count) {
  const auto* in = reinterpret_cast<const uint16_t*>(src);
  auto* out = reinterpret_cast<uint32_t*>(dst);
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(count, (c + 1) * kChunk);
    level_kernels().widen(in, out, c * kChunk, end);
  }
}

size_t Bf16StoredWeights::storage_bytes(const dnnl::memory::desc& f32_desc) {
  return f32_desc.get_size() / 2;
}

void Bf16StoredWeights::narrow_into(const dnnl::memory& packed, std::byte* dst) {
  PARADIFF_CHECK(packed.get_desc().data_type() == dnnl::memory::data_type::f32,
                 "bf16-stored weights must come from an f32 layout");
  const int64_t count = static_cast<int64_t>(packed.get_desc().get_size() / 4);
  const auto* in = static_cast<const uint32_t*>(packed.get_data_handle());
  auto* out = reinterpret_cast<uint16_t*>(dst);
#pragma omp parallel for schedule(static) if (count > kChunk)
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<uint16_t>(in[i] >> 16);
}

Bf16StoredWeights::Bf16StoredWeights(const dnnl::memory::desc& f32_desc,
                                     std::shared_ptr<const std::byte> storage)
    : desc_(f32_desc), storage_(std::move(storage)), layout_(read_layout(f32_desc)) {}

Bf16StoredWeights::Layout Bf16StoredWeights::read_layout(const dnnl::memory::desc& desc) {
  Layout l;
  const dnnl_memory_desc_t& d = desc.data;
  if (d.ndims != 2 || d.format_kind != dnnl_blocked) return l;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  l.k = d.dims[0];
  l.n = d.dims[1];
  l.sk = b.strides[0];
  l.sn = b.strides[1];
  if (b.inner_nblks == 0 && l.sn == 1) {
    l.bn = d.padded_dims[1];  // row-major: one block of every column
    l.sn = 0;
  } else if (b.inner_nblks == 1 && b.inner_idxs[0] == 1) {
    l.bn = b.inner_blks[0];
  } else if (b.inner_nblks == 2 && b.inner_idxs[0] == 0 && b.inner_idxs[1] == 1) {
    l.bk = b.inner_blks[0];
    l.bn = b.inner_blks[1];
  } else {
    return l;
  }
  l.readable = true;
  return l;
}

namespace {

// Columns of one task. Blocked layouts (oneDNN's AVX-512 fp32 packing): a block's 64-column
// runs, contiguous for the whole of K. Row-major weights (its AVX2 packing): 512 columns, so
// that each k reads 1 KiB of a row rather than one cache line per page.
constexpr int64_t kRun = 64;
constexpr int64_t kTileColumns = 512;  // the body's kMaxTile

// Row starts of the tile a thread works on, kept for its next tiles.
std::vector<const uint16_t*>& rows_buffer() {
  thread_local std::vector<const uint16_t*> rows;
  return rows;
}

}  // namespace

void Bf16StoredWeights::multiply_rows(const float* x, int64_t rows, float* y) const {
  PARADIFF_CHECK(layout_.readable, "bf16-stored weights: multiply_rows on an unreadable layout");
  const Layout l = layout_;
  const auto* w = reinterpret_cast<const uint16_t*>(storage_.get());
  const int64_t tile = l.bn > kRun ? kTileColumns : kRun;
  const int64_t tiles_per_block = (std::min(l.bn, l.n) + tile - 1) / tile;
  const int64_t blocks = (l.n + l.bn - 1) / l.bn;
  const int64_t tiles = blocks * tiles_per_block;
  // Rows in passes of the level's tile height, each pass reading the weights once.
  const int64_t per_pass = level_kernels().rows_per_tile;
  for (int64_t r0 = 0; r0 < rows; r0 += per_pass) {
    const int nr = static_cast<int>(std::min(per_pass, rows - r0));
#pragma omp parallel for schedule(static) if (tiles > 1 && l.k * l.n > (1 << 15))
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t block = t / tiles_per_block;
      const int64_t j0 = (t % tiles_per_block) * tile;  // first column within the block
      const int64_t n0 = block * l.bn + j0;
      if (n0 >= l.n || j0 >= l.bn) continue;
      const int64_t len = std::min({tile, l.bn - j0, l.n - n0});
      // Where each row of the tile starts (no division per row in the loops).
      std::vector<const uint16_t*>& row = rows_buffer();
      row.resize(static_cast<size_t>(l.k));
      const uint16_t* base = w + block * l.sn + j0;
      for (int64_t k = 0, kb = 0, kr = 0; k < l.k; ++k) {
        row[k] = base + kb * l.sk + kr * l.bn;
        if (++kr == l.bk) kr = 0, ++kb;
      }
      const float* xr = x + r0 * l.k;
      float* yr = y + r0 * l.n + n0;
      level_kernels().rows_tile(nr, xr, l.k, l.k, row.data(), len, yr, l.n);
    }
  }
}

Bf16StoredWeights Bf16StoredWeights::from_packed(const dnnl::memory& packed) {
  const size_t bytes = storage_bytes(packed.get_desc());
  auto tensor =
      std::make_shared<Tensor>(Tensor::empty({static_cast<int64_t>((bytes + 1) / 2)}, DType::BF16));
  narrow_into(packed, static_cast<std::byte*>(tensor->raw_data()));
  std::shared_ptr<const std::byte> storage(tensor,
                                           static_cast<const std::byte*>(tensor->raw_data()));
  return Bf16StoredWeights(packed.get_desc(), std::move(storage));
}

dnnl::memory Bf16StoredWeights::widened() const {
  PARADIFF_CHECK(defined(), "bf16-stored weights used before they were set");
  const size_t bytes = desc_.get_size();
  Tensor& buffer = scratch();
  if (buffer.nbytes() < bytes)
    buffer = Tensor::empty({static_cast<int64_t>((bytes + 3) / 4)}, DType::F32);
  widen_bf16(reinterpret_cast<const bf16*>(storage_.get()), buffer.data<float>(),
             static_cast<int64_t>(bytes / 4));
  return dnnl::memory(desc_, onednn_engine(), buffer.raw_data());
}

std::string_view bf16_rows_kernel_level() {
  return level_kernels().level;
}

int64_t Bf16StoredWeights::direct_rows() {
  return 4 * level_kernels().rows_per_tile;
}

size_t widening_scratch_bytes() {
  return scratch().nbytes();
}

}  // namespace paradiff::kernels::cpu
