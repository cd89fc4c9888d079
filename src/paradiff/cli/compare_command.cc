// paradiff compare: the relative error ||a - b|| / ||b|| between same-named tensors of two
// safetensors files, with an optional tolerance that sets the exit status. How a parallel run is
// checked against a single-process run, or paradiff against another implementation.
#include <cmath>
#include <cstdio>

#include "paradiff/cli/commands.h"
#include "paradiff/io/safetensors.h"

namespace paradiff::cli {

namespace {

struct Options {
  std::string a, b, tensor;
  double tolerance = -1;
};

int run(const Options& o) {
  const auto fa = SafetensorsFile::open(o.a), fb = SafetensorsFile::open(o.b);
  std::vector<std::string> names = o.tensor.empty() ? fb.names() : std::vector{o.tensor};
  bool ok = true;
  for (const std::string& name : names) {
    PARADIFF_CHECK(fa.contains(name), o.a, " has no tensor '", name, "'");
    PARADIFF_CHECK(fb.contains(name), o.b, " has no tensor '", name, "'");
    const Tensor x = fa.read(name, DType::F32), y = fb.read(name, DType::F32);
    PARADIFF_CHECK(x.shape() == y.shape(), "'", name, "': shapes differ, ", x.describe(), " vs ",
                   y.describe());
    double diff = 0, norm = 0, max_abs = 0;
    bool finite = true;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double p = x.data<float>()[i], q = y.data<float>()[i];
      finite = finite && std::isfinite(p);
      diff += (p - q) * (p - q);
      norm += q * q;
      max_abs = std::max(max_abs, std::abs(p - q));
    }
    const double rel = finite ? std::sqrt(diff / (norm > 0 ? norm : 1)) : INFINITY;
    const bool pass = o.tolerance < 0 || rel <= o.tolerance;
    ok = ok && pass;
    std::printf("%s: relative error %.3g, max abs error %.3g%s\n", name.c_str(), rel, max_abs,
                o.tolerance < 0 ? "" : (pass ? " (within tolerance)" : " (ABOVE TOLERANCE)"));
  }
  return ok ? 0 : 1;
}

}  // namespace

void add_compare_command(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "Relative error between same-named tensors of two safetensors files");
  cmd->add_option("a", o->a, "the file to check")->required();
  cmd->add_option("b", o->b, "the reference")->required();
  cmd->add_option("--tensor", o->tensor, "only this tensor (default: every tensor of b)");
  cmd->add_option("--tolerance", o->tolerance,
                  "exit with status 1 if any relative error exceeds this");
  cmd->callback([o, &action] {
    action = [o](dist::Communicator& world) { return world.rank() == 0 ? run(*o) : 0; };
  });
}

}  // namespace paradiff::cli
