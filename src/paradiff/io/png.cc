#include "paradiff/io/png.h"

#include <png.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace paradiff {

namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

[[noreturn]] void png_error_handler(png_structp, png_const_charp message) {
  throw Error(message);
}
void png_warning_handler(png_structp, png_const_charp) {}

void append_bytes(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))
      ->append(reinterpret_cast<const char*>(data), length);
}
void no_flush(png_structp) {}

}  // namespace

std::string encode_png(const Tensor& image) {
  PARADIFF_CHECK(image.ndim() == 3 && image.dim(0) == 3, "write_png: image must be (3, H, W), got ",
                 image.describe());
  const Tensor img = image.dtype() == DType::F32 ? image : image.to(DType::F32);
  const int64_t h = image.dim(1), w = image.dim(2);
  std::vector<png_byte> rows(static_cast<size_t>(h * w * 3));
  const float* p = img.data<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        float v = p[(c * h + y) * w + x];
        v = std::isnan(v) ? 0.0f : std::min(1.0f, std::max(0.0f, v));
        rows[(y * w + x) * 3 + c] = static_cast<png_byte>(std::nearbyint(v * 255.0f));
      }
  std::string bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_handler,
                                            png_warning_handler);
  png_infop info = png_create_info_struct(png);
  try {
    png_set_write_fn(png, &bytes, append_bytes, no_flush);
    png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int64_t y = 0; y < h; ++y) png_write_row(png, rows.data() + y * w * 3);
    png_write_end(png, nullptr);
  } catch (const Error& e) {
    png_destroy_write_struct(&png, &info);
    throw Error(str_cat("cannot encode PNG: ", e.what()));
  }
  png_destroy_write_struct(&png, &info);
  return bytes;
}

void write_png(const std::string& path, const Tensor& image) {
  const std::string bytes = encode_png(image);
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  PARADIFF_CHECK(file != nullptr, path, ": cannot open for writing: ", std::strerror(errno));
  PARADIFF_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), file.get()) == bytes.size() &&
                     std::fflush(file.get()) == 0,
                 path, ": write failed: ", std::strerror(errno));
}

namespace {

struct MemoryReader {
  std::string_view bytes;
  size_t offset = 0;
};

void read_bytes(png_structp png, png_bytep out, png_size_t length) {
  auto* reader = static_cast<MemoryReader*>(png_get_io_ptr(png));
  if (length > reader->bytes.size() - reader->offset) png_error(png, "the file ends early");
  std::memcpy(out, reader->bytes.data() + reader->offset, length);
  reader->offset += length;
}

}  // namespace

Tensor decode_png(std::string_view bytes, const std::string& name) {
  PARADIFF_CHECK(
      bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0,
      name, ": not a PNG file (no PNG signature)");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_handler,
                                           png_warning_handler);
  png_infop info = png_create_info_struct(png);
  MemoryReader reader{bytes};
  Tensor out;
  try {
    png_set_read_fn(png, &reader, read_bytes);
    // A header may claim any size: refuse what no pipeline uses before libpng allocates it.
    png_set_user_limits(png, kMaxPngSide, kMaxPngSide);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_png(png, info, PNG_TRANSFORM_STRIP_16 | PNG_TRANSFORM_PACKING | PNG_TRANSFORM_EXPAND,
                 nullptr);
    const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    const int channels = png_get_channels(png, info);
    PARADIFF_CHECK(channels == 3 || channels == 4, "expected RGB or RGBA, got ", channels,
                   " channels");
    png_bytepp rows = png_get_rows(png, info);
    out = Tensor::empty({3, h, w}, DType::F32);
    float* p = out.data<float>();
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t c = 0; c < 3; ++c) p[(c * h + y) * w + x] = rows[y][x * channels + c] / 255.0f;
  } catch (const Error& e) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(str_cat(name, ": cannot read PNG: ", e.what()));
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return out;
}

Tensor read_png(const std::string& path) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  PARADIFF_CHECK(file != nullptr, path, ": cannot open: ", std::strerror(errno));
  std::string bytes;
  char buffer[1 << 16];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0;)
    bytes.append(buffer, n);
  PARADIFF_CHECK(!std::ferror(file.get()), path, ": read failed: ", std::strerror(errno));
  return decode_png(bytes, path);
}

}  // namespace paradiff
