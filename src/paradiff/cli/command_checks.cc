// Checks shared by the subcommands, done before any model is loaded.
#include <filesystem>

#include "paradiff/cli/commands.h"
#include "paradiff/core/logging.h"

namespace paradiff::cli {

DType compute_dtype(const std::string& dtype) {
  const DType compute = parse_dtype(dtype);
  PARADIFF_CHECK(compute == DType::F32 || compute == DType::BF16,
                 "--dtype must be fp32 or bf16, got '", dtype, "'");
  return compute;
}

void check_output_folder(const std::string& output) {
  const auto dir = std::filesystem::absolute(output).parent_path();
  PARADIFF_CHECK(std::filesystem::is_directory(dir), "--output '", output, "': the folder '",
                 dir.string(), "' does not exist");
}

}  // namespace paradiff::cli
