#include "paradiff/kernels/cpu/attention_onednn.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "paradiff/core/cpu_isa.h"
#include "paradiff/core/error.h"
#include "paradiff/core/memory.h"
#include "paradiff/kernels/cpu/isa_dispatch.h"
#include "paradiff/kernels/cpu/onednn_context.h"

namespace paradiff::kernels {

PARADIFF_ISA_DECLARE(void softmax_chunk_rows(const float* scores, int64_t rows, int64_t n,
                                             float scale, void* p, DType p_dtype, float* shift,
                                             float* l, float* alpha))
PARADIFF_ISA_DECLARE(void scale_rows(float* o, int64_t rows, int64_t d, const float* scale,
                                     void* dst, DType dtype, int64_t dst_stride))

namespace attention_detail {
namespace {

using dnnl::memory;

// Packed keys and values held at once: 16 MiB, small next to a transformer block's activations.
constexpr size_t kPackBudget = size_t{16} << 20;

// Keys per chunk: a block's Q K^T and P V run one chunk of keys at a time with an online softmax
// between them, so one chunk's f32 scores (512 KiB at 256 rows), its P (256 KiB in bf16) and its
// packed K^T and V (128 KiB each at d = 128) stay in the core's 2 MiB L2, and every matmul has
// many rows and a short K. oneDNN 2.6 runs those shapes far better than whole rows of keys:
// measured on an Intel Xeon with AMX (family 6 model 167), bf16, 1 thread, random data,
// standalone calls: Q K^T 256 x 128 -> 512 at 1040-1100 GFLOP/s against 816-933 for the
// 16 x 128 -> 4352 slices of whole rows used before; P V 256 x 512 -> 128 with the sum into O at
// 1440-1530 against 800-830 for 256 x 4352 -> 128. Chunks of 256, 384, 768 and 1024 keys and
// blocks of 512 rows measured no faster.
constexpr int64_t kKeyChunk = 512;

// Query rows per block: 256, or 128 where 256 would pad the last block with more zero rows
// (1152 tokens: 9 blocks of 128, not 5 of 256 with 128 rows of padding), or the whole sequence
// rounded up to 16 when it is shorter. Measured as above, the whole attention of 8 heads x 128,
// best CPU time: at 4352 tokens 256-row blocks ran in 0.93-0.97x the time of 128-row ones; at
// 1152 and 2432 tokens 128-row blocks in 0.79-0.87x and 0.84-0.91x the time of 256-row ones.
int64_t block_rows(int64_t sq) {
  const int64_t whole = (sq + 15) / 16 * 16;
  const bool pads_more = (sq + 255) / 256 * 256 != (sq + 127) / 128 * 128;
  return std::min(whole, pads_more ? int64_t{128} : int64_t{256});
}

// The matmuls of one chunk width n for a block of `rows` query rows: Q K^T into f32 scores, P V
// into the f32 O of the block (set, for the first chunk) or added to it (the sum post-op), the
// reorders that pack one head's chunk of keys (as K^T) and of values into the layouts those
// matmuls chose, and a user-managed scratchpad size, so every thread can run them at once.
struct ChunkMatmuls {
  int64_t n = 0;                    // keys in the chunk
  dnnl::matmul qk, pv_set, pv_add;  // pv_set only for the full width (the first chunk is full)
  dnnl::reorder pack_kt, pack_v;
  memory::desc kt, v, scores, p;
  memory::desc kt_source, v_source;  // one head's chunk of (B, Skv, H, D)
  size_t kt_bytes = 0, v_bytes = 0;  // packed, rounded to 64
  size_t scratchpad_bytes = 0;
};

// A block's chunks: `full` chunks of width `chunk`, then one of width `tail` if it is not 0.
struct BlockMatmuls {
  int64_t chunk = 0, full = 0, tail = 0;
  memory::desc q, o;
  ChunkMatmuls full_chunk, tail_chunk;
  size_t head_bytes = 0;  // one head's packed chunks
  size_t scratchpad_bytes = 0;
};

memory::desc strided(int64_t rows, int64_t cols, DType dtype, int64_t row_stride,
                     int64_t col_stride) {
  return memory::desc({rows, cols}, onednn_dtype(dtype), memory::dims{row_stride, col_stride});
}

size_t round64(size_t bytes) {
  return (bytes + 63) / 64 * 64;
}

ChunkMatmuls make_chunk(int64_t rows, int64_t n, int64_t d, int64_t heads, DType in,
                        const memory::desc& q, const memory::desc& o, bool first) {
  auto& engine = onednn_engine();
  ChunkMatmuls m;
  m.n = n;
  m.scores = strided(rows, n, DType::F32, n, 1);
  m.p = strided(rows, n, in, n, 1);
  const memory::desc kt_any({d, n}, onednn_dtype(in), memory::format_tag::any);
  const memory::desc v_any({n, d}, onednn_dtype(in), memory::format_tag::any);
  dnnl::primitive_attr plain;  // raw Q K^T: the scale is applied in the softmax
  plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  dnnl::primitive_attr adding;
  adding.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  adding.set_post_ops(sum);
  dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q, kt_any, m.scores), plain, engine);
  dnnl::matmul::primitive_desc set_pd(dnnl::matmul::desc(m.p, v_any, o), plain, engine);
  m.kt = qk_pd.weights_desc();
  m.v = set_pd.weights_desc();
  // The adding product reads V in the layout the setting one chose: one packing serves both.
  dnnl::matmul::primitive_desc add_pd(dnnl::matmul::desc(m.p, m.v, o), adding, engine);
  m.kt_source = strided(d, n, in, 1, heads * d);
  m.v_source = strided(n, d, in, heads * d, 1);
  dnnl::reorder::primitive_desc kt_pd(engine, m.kt_source, engine, m.kt, plain);
  dnnl::reorder::primitive_desc v_pd(engine, m.v_source, engine, m.v, plain);
  m.qk = dnnl::matmul(qk_pd);
  if (first) m.pv_set = dnnl::matmul(set_pd);
  m.pv_add = dnnl::matmul(add_pd);
  m.pack_kt = dnnl::reorder(kt_pd);
  m.pack_v = dnnl::reorder(v_pd);
  m.kt_bytes = round64(m.kt.get_size());
  m.v_bytes = round64(m.v.get_size());
  m.scratchpad_bytes =
      std::max({qk_pd.scratchpad_desc().get_size(), set_pd.scratchpad_desc().get_size(),
                add_pd.scratchpad_desc().get_size(), kt_pd.scratchpad_desc().get_size(),
                v_pd.scratchpad_desc().get_size()});
  return m;
}

BlockMatmuls make_block(int64_t rows, int64_t skv, int64_t d, int64_t heads, DType in) {
  BlockMatmuls b;
  b.chunk = std::min(kKeyChunk, skv);
  b.full = skv / b.chunk;
  b.tail = skv % b.chunk;
  b.q = strided(rows, d, in, d, 1);          // the block's queries, copied densely
  b.o = strided(rows, d, DType::F32, d, 1);  // dense f32, divided by l into the heads' rows
  b.full_chunk = make_chunk(rows, b.chunk, d, heads, in, b.q, b.o, /*first=*/true);
  b.head_bytes = static_cast<size_t>(b.full) * (b.full_chunk.kt_bytes + b.full_chunk.v_bytes);
  b.scratchpad_bytes = b.full_chunk.scratchpad_bytes;
  if (b.tail > 0) {
    b.tail_chunk = make_chunk(rows, b.tail, d, heads, in, b.q, b.o, /*first=*/false);
    b.head_bytes += b.tail_chunk.kt_bytes + b.tail_chunk.v_bytes;
    b.scratchpad_bytes = std::max(b.scratchpad_bytes, b.tail_chunk.scratchpad_bytes);
  }
  return b;
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

// One thread's oneDNN arguments for a chunk width, made once and repointed with set_data_handle
// (a chunk's products are tens of microseconds of work: making memory objects and argument maps
// for each call showed in the time).
struct ChunkArgs {
  memory kt, v;
  std::unordered_map<int, memory> qk, pv;
  ChunkArgs(const ChunkMatmuls& m, const memory& q, const memory& o, float* scores, std::byte* p,
            const memory& pad) {
    auto& engine = onednn_engine();
    kt = memory(m.kt, engine, nullptr);
    v = memory(m.v, engine, nullptr);
    qk = {{DNNL_ARG_SRC, q},
          {DNNL_ARG_WEIGHTS, kt},
          {DNNL_ARG_DST, memory(m.scores, engine, scores)},
          {DNNL_ARG_SCRATCHPAD, pad}};
    pv = {{DNNL_ARG_SRC, memory(m.p, engine, p)},
          {DNNL_ARG_WEIGHTS, v},
          {DNNL_ARG_DST, o},
          {DNNL_ARG_SCRATCHPAD, pad}};
  }
};

}  // namespace

// Measured on an Intel Xeon with AMX (family 6 model 167), FLUX forward: bf16 through this path
// 1.9x faster than the vdpbf16ps tiles; f32 through it 7% slower than the f32 tiles; bf16 with
// oneDNN capped below AMX (avx512_bf16) the same as the tiles. Hence AMX and bf16 only, and only
// where bf16 is computed natively (PARADIFF_BF16_ARITHMETIC=fp32 widens it to the f32 tiles).
bool onednn_attention_preferred(DType dtype) {
  return dtype == DType::BF16 && active_cpu_isa() == CpuIsa::Amx && native_bf16();
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
  const int64_t rows = block_rows(sq);
  const int64_t blocks = (sq + rows - 1) / rows;
  const auto block = block_matmuls(rows, skv, d, heads, in);
  const BlockMatmuls& mm = *block;
  const int64_t chunks = mm.full + (mm.tail > 0 ? 1 : 0);
  const size_t scratchpad = std::max<size_t>(mm.scratchpad_bytes, 64);
  const size_t es = dtype_size(in), out_es = dtype_size(out.dtype());
  const size_t scores_bytes = round64(static_cast<size_t>(rows * mm.chunk) * 4);
  const size_t p_bytes = round64(static_cast<size_t>(rows * mm.chunk) * es);
  const size_t q_bytes = round64(static_cast<size_t>(rows * d) * es);
  const size_t o_bytes = round64(static_cast<size_t>(rows * d) * 4);
  const size_t state_bytes = round64(static_cast<size_t>(rows) * 4);  // one float per row
  const size_t per_thread =
      scores_bytes + p_bytes + round64(scratchpad) + q_bytes + o_bytes + 4 * state_bytes;
  const int threads = std::max(1, omp_get_max_threads());
  const std::shared_ptr<std::byte> scratch = allocate_bytes(per_thread * threads);
  // One head's chunks of K^T and V in the matmuls' own layouts (chunk c's K^T then its V), as many
  // heads at a time as fit in kPackBudget, in groups of equal size (8 heads within a budget of 7:
  // 4 + 4, not 7 + 1, whose packing would leave all threads but one waiting).
  const size_t head_bytes = mm.head_bytes;
  const int64_t bh = batch * heads;
  const int64_t most = std::clamp<int64_t>(
      static_cast<int64_t>(kPackBudget / std::max<size_t>(head_bytes, 1)), 1, bh);
  const int64_t groups = (bh + most - 1) / most;
  const int64_t group = (bh + groups - 1) / groups;
  const std::shared_ptr<std::byte> packed = allocate_bytes(static_cast<size_t>(group) * head_bytes);
  auto softmax = PARADIFF_ISA_SELECT(softmax_chunk_rows);
  auto scale_out = PARADIFF_ISA_SELECT(scale_rows);
  // Chunk c of a head: its matmuls, and where its packing starts in the head's bytes.
  auto chunk_of = [&](int64_t c) -> const ChunkMatmuls& {
    return c < mm.full ? mm.full_chunk : mm.tail_chunk;
  };
  auto chunk_offset = [&](int64_t c) {
    return static_cast<size_t>(c) * (mm.full_chunk.kt_bytes + mm.full_chunk.v_bytes);
  };

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
    auto* shift = reinterpret_cast<float*>(o_block + o_bytes);
    auto* sum = reinterpret_cast<float*>(o_block + o_bytes + state_bytes);
    auto* alpha = reinterpret_cast<float*>(o_block + o_bytes + 2 * state_bytes);
    auto* inv_sum = reinterpret_cast<float*>(o_block + o_bytes + 3 * state_bytes);
    dnnl::stream& stream = onednn_stream();
    const memory pad_mem(
        {{static_cast<int64_t>(scratchpad)}, memory::data_type::u8, memory::dims{1}}, engine, pad);
    const memory q_mem(mm.q, engine, q_block), o_mem(mm.o, engine, o_block);
    ChunkArgs full_args(mm.full_chunk, q_mem, o_mem, scores, p, pad_mem);
    std::optional<ChunkArgs> tail_args;
    if (mm.tail > 0) tail_args.emplace(mm.tail_chunk, q_mem, o_mem, scores, p, pad_mem);
    for (int64_t g0 = 0; g0 < bh; g0 += group) {
      const int64_t gn = std::min(group, bh - g0);
#pragma omp for schedule(static)
      for (int64_t head = g0; head < g0 + gn; ++head) {
        const int64_t b = head / heads, h = head % heads;
        std::byte* to = packed.get() + static_cast<size_t>(head - g0) * head_bytes;
        for (int64_t c = 0; c < chunks; ++c) {
          const ChunkMatmuls& cm = chunk_of(c);
          const size_t from = static_cast<size_t>(((b * skv + c * mm.chunk) * heads + h) * d) * es;
          std::byte* at = to + chunk_offset(c);
          cm.pack_kt.execute(stream, {{DNNL_ARG_FROM, memory(cm.kt_source, engine, kp + from)},
                                      {DNNL_ARG_TO, memory(cm.kt, engine, at)},
                                      {DNNL_ARG_SCRATCHPAD, pad_mem}});
          cm.pack_v.execute(stream, {{DNNL_ARG_FROM, memory(cm.v_source, engine, vp + from)},
                                     {DNNL_ARG_TO, memory(cm.v, engine, at + cm.kt_bytes)},
                                     {DNNL_ARG_SCRATCHPAD, pad_mem}});
        }
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
        for (int64_t j = 0; j < n; ++j)
          std::memcpy(q_block + static_cast<size_t>(j * d) * es,
                      qp + static_cast<size_t>((token + j * heads) * d) * es,
                      static_cast<size_t>(d) * es);
        if (n < rows)  // padding rows: zero queries, outputs dropped
          std::memset(q_block + static_cast<size_t>(n * d) * es, 0,
                      static_cast<size_t>((rows - n) * d) * es);
        std::fill(shift, shift + rows, -std::numeric_limits<float>::infinity());
        std::fill(sum, sum + rows, 0.0f);
        for (int64_t c = 0; c < chunks; ++c) {
          const ChunkMatmuls& cm = chunk_of(c);
          ChunkArgs& args = c < mm.full ? full_args : *tail_args;
          std::byte* at = head_packed + chunk_offset(c);
          args.kt.set_data_handle(at);
          args.v.set_data_handle(at + cm.kt_bytes);
          cm.qk.execute(stream, args.qk);
          stream.wait();
          softmax(scores, rows, cm.n, scale, p, in, shift, sum, alpha);
          if (c == 0) {
            cm.pv_set.execute(stream, args.pv);
          } else {
            // O so far in the units of the moved shifts (rows whose shift stayed: alpha = 1).
            for (int64_t r = 0; r < rows; ++r)
              if (alpha[r] != 1.0f)
                scale_out(reinterpret_cast<float*>(o_block) + r * d, 1, d, alpha + r,
                          o_block + static_cast<size_t>(r * d) * 4, DType::F32, d);
            cm.pv_add.execute(stream, args.pv);
          }
          stream.wait();
        }
        for (int64_t j = 0; j < n; ++j) inv_sum[j] = 1.0f / sum[j];
        scale_out(reinterpret_cast<float*>(o_block), n, d, inv_sum,
                  op + static_cast<size_t>(token * d) * out_es, out.dtype(), heads * d);
        // ln sum_j exp(scale s_j) = shift ln 2 + ln l, the shift being in the log2 domain.
        if (lp != nullptr)
          for (int64_t j = 0; j < n; ++j)
            lp[token + j * heads] = shift[j] * std::numbers::ln2_v<float> + std::log(sum[j]);
      }
      // (implicit barrier: no block still reads the group when the next one is packed over it)
    }
  }
}

}  // namespace attention_detail
}  // namespace paradiff::kernels
