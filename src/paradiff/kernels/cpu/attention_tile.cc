// The parts of the attention tile that do not depend on the instruction set: the packed layout's
// geometry, the scratch, loading the query rows, writing the normalised output, and the table of
// implementations per level. Compiled for the build's target, not for a level.
#include "paradiff/kernels/cpu/attention_tile.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace paradiff::kernels::attention_detail {
namespace {

int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}
size_t align64(size_t bytes) {
  return (bytes + 63) / 64 * 64;
}

}  // namespace

HeadLayout make_head_layout(DType dtype, int64_t skv, int64_t d, bool bf16_pairs) {
  HeadLayout l{};
  l.dtype = dtype;
  l.packed = dtype == DType::BF16 && bf16_pairs ? DType::BF16 : DType::F32;
  l.skv = skv;
  l.d = d;
  l.blocks = (skv + kKvBlock - 1) / kKvBlock;
  l.dq = l.packed == DType::BF16 ? round_up(d, 2) : d;
  l.dv = round_up(d, 16);
  l.k_block = l.dq * kKvBlock;
  l.v_block = kKvBlock * l.dv;
  l.elem_size = dtype_size(l.packed);
  return l;
}

size_t head_bytes(const HeadLayout& layout) {
  return static_cast<size_t>(layout.blocks * (layout.k_block + layout.v_block)) * layout.elem_size;
}

const void* packed_k(const HeadLayout& layout, const void* packed_head, int64_t block) {
  return static_cast<const std::byte*>(packed_head) +
         static_cast<size_t>(block * layout.k_block) * layout.elem_size;
}

const void* packed_v(const HeadLayout& layout, const void* packed_head, int64_t block) {
  return static_cast<const std::byte*>(packed_head) +
         static_cast<size_t>((layout.blocks * layout.k_block) + block * layout.v_block) *
             layout.elem_size;
}

TileScratch carve_scratch(const HeadLayout& layout, std::byte* scratch) {
  TileScratch s{};
  std::byte* at = scratch;
  auto take = [&](size_t bytes) {
    std::byte* p = at;
    at += align64(bytes);
    return p;
  };
  s.q = take(static_cast<size_t>(kTileRows * layout.dq) * layout.elem_size);
  s.p = take(static_cast<size_t>(kTileRows * kKvBlock) * layout.elem_size);
  s.o = reinterpret_cast<float*>(take(static_cast<size_t>(kTileRows * layout.dv) * sizeof(float)));
  s.m = reinterpret_cast<float*>(take(kTileRows * sizeof(float)));
  s.l = reinterpret_cast<float*>(take(kTileRows * 16 * sizeof(float)));
  s.alpha = reinterpret_cast<float*>(take(kTileRows * sizeof(float)));
  return s;
}

size_t tile_scratch_bytes(const HeadLayout& layout) {
  return align64(static_cast<size_t>(kTileRows * layout.dq) * layout.elem_size) +
         align64(static_cast<size_t>(kTileRows * kKvBlock) * layout.elem_size) +
         align64(static_cast<size_t>(kTileRows * layout.dv) * sizeof(float)) +
         align64(kTileRows * sizeof(float)) * 2 + align64(kTileRows * 16 * sizeof(float));
}

void load_q_tile(const TileArgs& args, const TileScratch& s) {
  const HeadLayout& l = *args.layout;
  if (l.dtype == DType::BF16 && l.packed == DType::F32) {
    // Widened to f32 (exact); flipping the sign bit first negates exactly.
    const uint16_t flip = args.negate_q ? 0x8000u : 0u;
    for (int64_t r = 0; r < args.rows; ++r) {
      const uint16_t* src = static_cast<const uint16_t*>(args.q) + r * args.q_stride;
      float* dst = static_cast<float*>(s.q) + r * l.dq;
#pragma omp simd
      for (int64_t i = 0; i < l.d; ++i)
        dst[i] = std::bit_cast<float>(static_cast<uint32_t>(src[i] ^ flip) << 16);
    }
  } else if (l.dtype == DType::F32) {
    const float sign = args.negate_q ? -1.0f : 1.0f;
    for (int64_t r = 0; r < args.rows; ++r) {
      const float* src = static_cast<const float*>(args.q) + r * args.q_stride;
      float* dst = static_cast<float*>(s.q) + r * l.dq;
#pragma omp simd
      for (int64_t i = 0; i < l.d; ++i) dst[i] = sign * src[i];
    }
  } else {
    // Flipping the sign bit negates a bf16 exactly.
    const uint16_t flip = args.negate_q ? 0x8000u : 0u;
    for (int64_t r = 0; r < args.rows; ++r) {
      const uint16_t* src = static_cast<const uint16_t*>(args.q) + r * args.q_stride;
      uint16_t* dst = static_cast<uint16_t*>(s.q) + r * l.dq;
#pragma omp simd
      for (int64_t i = 0; i < l.d; ++i) dst[i] = static_cast<uint16_t>(src[i] ^ flip);
      for (int64_t i = l.d; i < l.dq; ++i) dst[i] = 0;
    }
  }
}

void write_tile(const TileArgs& args, const TileScratch& s, const float* l_total) {
  const HeadLayout& l = *args.layout;
  for (int64_t r = 0; r < args.rows; ++r) {
    const float inv = 1.0f / l_total[r];
    const float* o = s.o + r * l.dv;
    if (args.out_dtype == DType::F32) {
      float* dst = static_cast<float*>(args.out) + r * args.out_stride;
#pragma omp simd
      for (int64_t i = 0; i < l.d; ++i) dst[i] = o[i] * inv;
    } else {
      uint16_t* dst = static_cast<uint16_t*>(args.out) + r * args.out_stride;
      // float_to_bf16 (round to nearest even, NaN kept quiet) without a branch, so it vectorises.
#pragma omp simd
      for (int64_t i = 0; i < l.d; ++i) {
        const uint32_t u = std::bit_cast<uint32_t>(o[i] * inv);
        const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        const uint32_t nan = (u >> 16) | 0x40u;
        dst[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
      }
    }
    // m is the running max in the log2 domain: sum exp(scale * s) = 2^m * l.
    if (args.lse != nullptr)
      args.lse[r * args.lse_stride] = static_cast<float>(static_cast<double>(s.m[r]) * M_LN2 +
                                                         std::log(static_cast<double>(l_total[r])));
  }
}

namespace {

constexpr TileKernels kPortable{CpuIsa::Portable,
                                "portable f32",
                                "portable bf16",
                                true,
                                isa_portable::pack_f32,
                                isa_portable::tile_f32,
                                isa_portable::pack_bf16_pairs,
                                isa_portable::tile_bf16_pairs};
#if defined(__x86_64__)
constexpr TileKernels kAvx2{CpuIsa::Avx2,
                            "avx2 f32",
                            "avx2 f32 (bf16 widened)",
                            false,
                            isa_avx2::pack_f32,
                            isa_avx2::tile_f32,
                            nullptr,
                            nullptr};
constexpr TileKernels kAvx512{CpuIsa::Avx512,
                              "avx512 f32",
                              "avx512 f32 (bf16 widened)",
                              false,
                              isa_avx512::pack_f32,
                              isa_avx512::tile_f32,
                              nullptr,
                              nullptr};
// f32 inputs gain nothing from AVX512_BF16: they run the avx512 f32 tiles.
constexpr TileKernels kAvx512Bf16{CpuIsa::Avx512Bf16,
                                  "avx512 f32",
                                  "avx512_bf16 bf16 (vdpbf16ps)",
                                  true,
                                  isa_avx512::pack_f32,
                                  isa_avx512::tile_f32,
                                  isa_avx512_bf16::pack_bf16_pairs,
                                  isa_avx512_bf16::tile_bf16_pairs};
#endif

}  // namespace

const TileKernels& tile_kernels_for(CpuIsa level) {
#if defined(__x86_64__)
  if (level >= CpuIsa::Avx512Bf16) return kAvx512Bf16;  // Amx included: no AMX tiles here
  if (level == CpuIsa::Avx512) return kAvx512;
  if (level == CpuIsa::Avx2) return kAvx2;
#else
  (void)level;
#endif
  return kPortable;
}

const TileKernels& tile_kernels() {
  // bf16 inputs run the vdpbf16ps tiles only where bf16 is computed natively (native_bf16() may
  // say no at avx512_bf16, core/cpu_isa.h); elsewhere they are widened to the f32 tiles.
  static const TileKernels& kernels = tile_kernels_for(
      active_cpu_isa() >= CpuIsa::Avx512Bf16 && !native_bf16() ? CpuIsa::Avx512 : active_cpu_isa());
  return kernels;
}

}  // namespace paradiff::kernels::attention_detail
