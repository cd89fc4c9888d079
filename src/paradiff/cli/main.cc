// paradiff: the command line. Every error a user can cause ends with one clear line and a
// non-zero exit status, never a crash.
#include <cstdio>
#include <exception>

#include "paradiff/cli/commands.h"
#include "paradiff/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"paradiff: FLUX-class diffusion transformers split across processes"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "paradiff 0.1.0");
  paradiff::cli::Action action;
  paradiff::cli::add_transformer_forward_command(app, action);
  paradiff::cli::add_inspect_command(app, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action();
  } catch (const paradiff::Error& e) {
    std::fprintf(stderr, "paradiff: error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "paradiff: internal error: %s\n", e.what());
  }
  return 1;
}
