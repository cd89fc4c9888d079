// The paradiff subcommands: each registers its options on the CLI11 app and returns the action
// to run once parsing succeeded.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace paradiff::cli {

using Action = std::function<int()>;

// Each adds a subcommand to `app` and sets `action` when that subcommand is chosen.
void add_transformer_forward_command(CLI::App& app, Action& action);
void add_inspect_command(CLI::App& app, Action& action);

}  // namespace paradiff::cli
