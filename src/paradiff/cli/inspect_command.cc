// paradiff inspect: what a safetensors file, sharded checkpoint or model folder holds.
#include <cstdio>
#include <filesystem>

#include "paradiff/cli/commands.h"
#include "paradiff/io/checkpoint.h"

namespace paradiff::cli {

namespace {

int run(const std::string& path) {
  const Checkpoint ckpt =
      std::filesystem::is_directory(path) ? Checkpoint::open_folder(path) : Checkpoint::open(path);
  std::printf("%s: %zu tensors%s\n", ckpt.path().c_str(), ckpt.size(),
              ckpt.is_sharded() ? str_cat(" in ", ckpt.shards().size(), " shards").c_str() : "");
  int64_t total = 0;
  for (const std::string& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    total += info.numel;
    std::printf("  %-60s %s\n", name.c_str(), info.describe().c_str());
  }
  std::printf("%lld parameters\n", static_cast<long long>(total));
  for (const auto& [key, value] : ckpt.metadata())
    std::printf("metadata %s = %s\n", key.c_str(), value.c_str());
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app, Action& action) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "List the tensors of a safetensors file, sharded index or model folder");
  cmd->add_option("path", *path, "file, *.safetensors.index.json or folder")->required();
  cmd->callback([path, &action] {
    action = [path](dist::Communicator& world) { return world.rank() == 0 ? run(*path) : 0; };
  });
}

}  // namespace paradiff::cli
