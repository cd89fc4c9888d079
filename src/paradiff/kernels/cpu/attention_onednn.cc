#include "paradiff/kernels/cpu/attention_onednn.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/error.h"
#include "paradiff/core/memory.h"
#include "paradiff/kernels/cpu/isa_dispatch.h"
#include "paradiff/kernels/cpu/onednn_context.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void softmax_rows(const float* scores, int64_t rows, int64_t n, float scale,
                                       void* p, DType p_dtype, float* inv_sum, float* lse))
PARADIFF_ISA_DECLARE(void scale_rows(float* o, int64_t rows, int64_t d, const float* scale,
                                     void* dst, DType dtype, int64_t dst_stride))

namespace attention_detail {
namespace {

using dnnl::memory;

// Packed keys and values held at once: 16 MiB, small next to a transformer block's activations.
constexpr size_t kPackBudget = size_t{16} << 20;

// Query rows per block, a multiple of 16 from 16 to 256: as many as keep one block's
// probabilities P within 4 MiB (the f32 scores are made a slice of rows at a time, see
// qk_slice_rows). Each head's K^T and V are packed once into the layouts the AMX GEMMs chose, so a
// block packs nothing.
// Measured on an Intel Xeon with AMX (family 6 model 167), 4352 tokens, 8 heads, 1 thread, under
// load: 256-row blocks ran the whole attention in 0.93x the time of 112-row ones (the earlier
// 3 MiB budget for scores and P together); before the packing, small blocks ran at 0.37x the rate.
int64_t block_rows(int64_t skv, DType dtype) {
  const auto bytes_per_row = static_cast<int64_t>(skv * dtype_size(dtype));
  const int64_t rows = (int64_t{4} << 20) / std::max<int64_t>(bytes_per_row, 1);
  return std::clamp<int64_t>(rows / 16 * 16, 16, 256);
}

// Query rows per Q K^T matmul: a block's scores are made and turned into P one slice of rows at a
// time, so the softmax reads f32 scores the matmul has just left in the core's cache instead of a
// whole block's from farther away. A slice is the most rows (a multiple of 16 that divides the
// block's rows) whose scores fit in kSliceScoreBytes: 16 rows at FLUX's 4352 tokens (272 KiB),
// 32 at 2432 tokens, 64 at Qwen-Image's 1152. The raw product: the scale is applied in the
// softmax, which leaves the matmul without an epilogue.
// Measured on an Intel Xeon with AMX (family 6 model 167), 1 thread: at 4352 tokens, 16-row
// slices took 0.65x the time of whole 112-row blocks for Q K^T (the whole attention 0.8x); at
// 1152 tokens, where a 16-row product is about 5 us and oneDNN's per-call cost shows, 64-row
// slices ran the Qwen-Image mid-size bf16 forward 3-4% faster than 16-row ones (quiet); at 4352,
// 32-row slices were no faster than 16.
constexpr int64_t kSliceScoreBytes = int64_t{320} << 10;

int64_t qk_slice_rows(int64_t rows, int64_t skv) {
  int64_t slice = 16;
  for (int64_t s = 32; s <= rows; s += 16)
    if (rows % s == 0 && s * skv * 4 <= kSliceScoreBytes) slice = s;
  return std::min(slice, rows);
}

// The two matmuls of a block of `rows` query rows, the reorders that pack one head's keys (as
// K^T) and values into the layouts those matmuls chose for them, and a user-managed scratchpad
// size, so that every thread can run them at once (each with its own).
struct BlockMatmuls {
  dnnl::matmul qk, pv;
  dnnl::reorder pack_kt, pack_v;
  int64_t qk_rows = 0;  // query rows per Q K^T matmul (a slice of the block)
  memory::desc q, kt, scores, p, v, o;
  memory::desc kt_source, v_source;  // one head of (B, Skv, H, D)
  size_t scratchpad_bytes = 0;
};

memory::desc strided(int64_t rows, int64_t cols, DType dtype, int64_t row_stride,
                     int64_t col_stride) {
  return memory::desc({rows, cols}, onednn_dtype(dtype), memory::dims{row_stride, col_stride});
}

BlockMatmuls make_block(int64_t rows, int64_t skv, int64_t d, int64_t heads, DType in) {
  auto& engine = onednn_engine();
  BlockMatmuls m;
  m.qk_rows = qk_slice_rows(rows, skv);
  m.q = strided(m.qk_rows, d, in, d, 1);  // a slice of the block's queries, copied densely
  m.scores = strided(m.qk_rows, skv, DType::F32, skv, 1);
  m.p = strided(rows, skv, in, skv, 1);
  m.o = strided(rows, d, DType::F32, d, 1);  // dense f32, divided by l into the heads' rows
  const memory::desc kt_any({d, skv}, onednn_dtype(in), memory::format_tag::any);
  const memory::desc v_any({skv, d}, onednn_dtype(in), memory::format_tag::any);
  dnnl::primitive_attr qk_attr;  // raw Q K^T: the scale is applied in the softmax
  qk_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(m.q, kt_any, m.scores), qk_attr, engine);
  dnnl::primitive_attr pv_attr;
  pv_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(m.p, v_any, m.o), pv_attr, engine);
  m.kt = qk_pd.weights_desc();
  m.v = pv_pd.weights_desc();
  m.kt_source = strided(d, skv, in, 1, heads * d);
  m.v_source = strided(skv, d, in, heads * d, 1);
  dnnl::primitive_attr reorder_attr;
  reorder_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc kt_pd(engine, m.kt_source, engine, m.kt, reorder_attr);
  dnnl::reorder::primitive_desc v_pd(engine, m.v_source, engine, m.v, reorder_attr);
  m.qk = dnnl::matmul(qk_pd);
  m.pv = dnnl::matmul(pv_pd);
  m.pack_kt = dnnl::reorder(kt_pd);
  m.pack_v = dnnl::reorder(v_pd);
  m.scratchpad_bytes =
      std::max({qk_pd.scratchpad_desc().get_size(), pv_pd.scratchpad_desc().get_size(),
                kt_pd.scratchpad_desc().get_size(), v_pd.scratchpad_desc().get_size()});
  return m;
}

// Primitives by shape: a model calls attention with a few shapes, again every step. Qwen-Image's
// key count follows each prompt's length, so a long-running server would meet many: past
// kMaxCachedShapes the cache starts again (callers hold their entries by shared_ptr).
constexpr size_t kMaxCachedShapes = 64;

std::shared_ptr<const BlockMatmuls> block_matmuls(int64_t rows, int64_t skv, int64_t d,
                                                  int64_t heads, DType in) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, DType>,
                  std::shared_ptr<const BlockMatmuls>>
      cache;
  const auto key = std::make_tuple(rows, skv, d, heads, in);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= kMaxCachedShapes) cache.clear();
  auto made = std::make_shared<const BlockMatmuls>(make_block(rows, skv, d, heads, in));
  cache.emplace(key, made);
  return made;
}

size_t round64(size_t bytes) {
  return (bytes + 63) / 64 * 64;
}

}  // namespace

// Measured on an Intel Xeon with AMX (family 6 model 167), FLUX forward: bf16 through this path
// 1.9x faster than the vdpbf16ps tiles; f32 through it 7% slower than the f32 tiles; bf16 with
// oneDNN capped below AMX (avx512_bf16) the same as the tiles. Hence AMX and bf16 only.
bool onednn_attention_preferred(DType dtype) {
  return dtype == DType::BF16 && active_cpu_isa() == CpuIsa::Amx;
}

std::string_view onednn_attention_name(DType dtype) {
  return dtype == DType::BF16 ? "onednn matmul bf16 (amx)" : "onednn matmul f32";
}

void attend_onednn(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, Tensor* lse,
                   float scale) {
  const int64_t batch = q.dim(0), sq = q.dim(1), heads = q.dim(2), d = q.dim(3);
  const int64_t skv = k.dim(1);
  const DType in = q.dtype();
  PARADIFF_CHECK(in == DType::BF16 || out.dtype() == DType::F32,
                 "oneDNN attention: f32 inputs need an f32 output, got ", out.describe());
  // Every block has `rows` rows (one primitive, one packed layout); the last one is padded with
  // zero queries whose outputs are dropped.
  const int64_t rows = std::min(block_rows(skv, in), (sq + 15) / 16 * 16);
  const int64_t blocks = (sq + rows - 1) / rows;
  const auto block = block_matmuls(rows, skv, d, heads, in);
  const BlockMatmuls& mm = *block;
  const size_t scratchpad = std::max<size_t>(mm.scratchpad_bytes, 64);
  const size_t es = dtype_size(in), out_es = dtype_size(out.dtype());
  const int64_t slice = mm.qk_rows;
  const size_t scores_bytes = round64(static_cast<size_t>(slice * skv) * 4);
  const size_t p_bytes = round64(static_cast<size_t>(rows * skv) * es);
  const size_t q_bytes = round64(static_cast<size_t>(rows * d) * es);
  const size_t o_bytes = round64(static_cast<size_t>(rows * d) * 4);
  const size_t per_thread =
      scores_bytes + p_bytes + round64(scratchpad) + q_bytes + o_bytes + 2 * rows * 4;
  const int threads = std::max(1, omp_get_max_threads());
  const std::shared_ptr<std::byte> scratch = allocate_bytes(per_thread * threads);
  // One head's K^T and V in the matmuls' own layouts, as many heads at a time as fit in
  // kPackBudget.
  const size_t kt_bytes = round64(mm.kt.get_size()), v_bytes = round64(mm.v.get_size());
  const size_t head_bytes = kt_bytes + v_bytes;
  const int64_t bh = batch * heads;
  // Groups of equal size (8 heads within a budget of 7: two groups of 4, not 7 and 1, whose
  // packing would leave all threads but one waiting).
  const int64_t most = std::clamp<int64_t>(
      static_cast<int64_t>(kPackBudget / std::max<size_t>(head_bytes, 1)), 1, bh);
  const int64_t groups = (bh + most - 1) / most;
  const int64_t group = (bh + groups - 1) / groups;
  const std::shared_ptr<std::byte> packed = allocate_bytes(static_cast<size_t>(group) * head_bytes);
  auto softmax = PARADIFF_ISA_SELECT(softmax_rows);
  auto scale_out = PARADIFF_ISA_SELECT(scale_rows);

  const auto* qp = static_cast<const std::byte*>(q.raw_data());
  auto* kp = const_cast<std::byte*>(static_cast<const std::byte*>(k.raw_data()));
  auto* vp = const_cast<std::byte*>(static_cast<const std::byte*>(v.raw_data()));
  auto* op = static_cast<std::byte*>(out.raw_data());
  float* lp = lse != nullptr ? lse->data<float>() : nullptr;
  auto& engine = onednn_engine();

#pragma omp parallel num_threads(threads)
  {
    std::byte* mine = scratch.get() + per_thread * static_cast<size_t>(omp_get_thread_num());
    auto* scores = reinterpret_cast<float*>(mine);
    std::byte* p = mine + scores_bytes;
    std::byte* pad = p + p_bytes;
    std::byte* q_block = pad + round64(scratchpad);
    std::byte* o_block = q_block + q_bytes;
    auto* block_lse = reinterpret_cast<float*>(o_block + o_bytes);
    float* block_inv_sum = block_lse + rows;
    dnnl::stream& stream = onednn_stream();
    const memory pad_mem(
        {{static_cast<int64_t>(scratchpad)}, memory::data_type::u8, memory::dims{1}}, engine, pad);
    // The matmuls' arguments, made once per thread and pointed at each slice and head with
    // set_data_handle: a Q K^T slice at FLUX's 4352 tokens is about 25 us of work, and making
    // four oneDNN memory objects and an argument map for each of its 26000 calls per forward cost
    // 5% of the attention (same machine, 1 x 4352 x 8 x 128 bf16, 1 thread, best CPU time of 6
    // calls, three alternating pairs: 143-149 ms with them, 135-140 without).
    memory q_mem(mm.q, engine, q_block), kt_mem(mm.kt, engine, packed.get());
    memory v_mem(mm.v, engine, packed.get());
    const std::unordered_map<int, memory> qk_args{{DNNL_ARG_SRC, q_mem},
                                                  {DNNL_ARG_WEIGHTS, kt_mem},
                                                  {DNNL_ARG_DST, memory(mm.scores, engine, scores)},
                                                  {DNNL_ARG_SCRATCHPAD, pad_mem}};
    const std::unordered_map<int, memory> pv_args{{DNNL_ARG_SRC, memory(mm.p, engine, p)},
                                                  {DNNL_ARG_WEIGHTS, v_mem},
                                                  {DNNL_ARG_DST, memory(mm.o, engine, o_block)},
                                                  {DNNL_ARG_SCRATCHPAD, pad_mem}};
    for (int64_t g0 = 0; g0 < bh; g0 += group) {
      const int64_t gn = std::min(group, bh - g0);
#pragma omp for schedule(static)
      for (int64_t head = g0; head < g0 + gn; ++head) {
        const int64_t b = head / heads, h = head % heads;
        const size_t from = static_cast<size_t>((b * skv * heads + h) * d) * es;
        std::byte* to = packed.get() + static_cast<size_t>(head - g0) * head_bytes;
        mm.pack_kt.execute(stream, {{DNNL_ARG_FROM, memory(mm.kt_source, engine, kp + from)},
                                    {DNNL_ARG_TO, memory(mm.kt, engine, to)},
                                    {DNNL_ARG_SCRATCHPAD, pad_mem}});
        mm.pack_v.execute(stream, {{DNNL_ARG_FROM, memory(mm.v_source, engine, vp + from)},
                                   {DNNL_ARG_TO, memory(mm.v, engine, to + kt_bytes)},
                                   {DNNL_ARG_SCRATCHPAD, pad_mem}});
        stream.wait();
      }
      // (implicit barrier: the group is packed before any block reads it)
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < gn * blocks; ++item) {
        const int64_t head = g0 + item / blocks, blk = item % blocks;
        const int64_t b = head / heads, h = head % heads, i0 = blk * rows;
        const int64_t n = std::min(rows, sq - i0);
        const int64_t token = (b * sq + i0) * heads + h;  // (b, i0, h) in (B, Sq, H)
        std::byte* head_packed = packed.get() + static_cast<size_t>(head - g0) * head_bytes;
        kt_mem.set_data_handle(head_packed);
        v_mem.set_data_handle(head_packed + kt_bytes);
        for (int64_t j = 0; j < n; ++j)
          std::memcpy(q_block + static_cast<size_t>(j * d) * es,
                      qp + static_cast<size_t>((token + j * heads) * d) * es,
                      static_cast<size_t>(d) * es);
        if (n < rows) {  // padding rows: zero queries, zero probabilities, outputs dropped
          std::memset(q_block + static_cast<size_t>(n * d) * es, 0,
                      static_cast<size_t>((rows - n) * d) * es);
          std::memset(p + static_cast<size_t>(n * skv) * es, 0,
                      static_cast<size_t>((rows - n) * skv) * es);
        }
        for (int64_t j0 = 0; j0 < n; j0 += slice) {
          const int64_t jn = std::min(slice, n - j0);
          q_mem.set_data_handle(q_block + static_cast<size_t>(j0 * d) * es);
          mm.qk.execute(stream, qk_args);
          stream.wait();
          softmax(scores, jn, skv, scale, p + static_cast<size_t>(j0 * skv) * es, in,
                  block_inv_sum + j0, lp != nullptr ? block_lse + j0 : nullptr);
        }
        mm.pv.execute(stream, pv_args);
        stream.wait();
        scale_out(reinterpret_cast<float*>(o_block), n, d, block_inv_sum,
                  op + static_cast<size_t>(token * d) * out_es, out.dtype(), heads * d);
        if (lp != nullptr)
          for (int64_t j = 0; j < n; ++j) lp[token + j * heads] = block_lse[j];
      }
      // (implicit barrier: no block still reads the group when the next one is packed over it)
    }
  }
}

}  // namespace attention_detail
}  // namespace paradiff::kernels
