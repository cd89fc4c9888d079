// paradiff: the command line. Runs under mpirun (every rank parses the same command line) or as
// a world of one. Every error a user can cause ends with one clear line and a non-zero exit
// status; an error on one rank ends the whole job at once.
#include <cstdio>

#include "paradiff/cli/commands.h"
#include "paradiff/dist/distributed_runtime.h"

int main(int argc, char** argv) {
  return paradiff::dist::run_distributed(argc, argv, [&](paradiff::dist::Communicator& world) {
    CLI::App app{"paradiff: FLUX-class diffusion transformers split across processes"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "paradiff 0.1.0");
    paradiff::cli::Action action;
    paradiff::cli::add_generate_command(app, action);
    paradiff::cli::add_serve_command(app, action);
    paradiff::cli::add_staged_commands(app, action);
    paradiff::cli::add_transformer_forward_command(app, action);
    paradiff::cli::add_inspect_command(app, action);
    paradiff::cli::add_bench_command(app, action);
    paradiff::cli::add_compare_command(app, action);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      // Every rank parsed the same line: one of them reports it.
      if (world.rank() == 0) return app.exit(e);
      return e.get_exit_code();
    }
    return action(world);
  });
}
