#include "paradiff/dist/host_names.h"

#include <unistd.h>

#include <algorithm>
#include <array>

#include "paradiff/core/error.h"

namespace paradiff::dist {

namespace {
constexpr size_t kNameBytes = 256;  // HOST_NAME_MAX is 64 on Linux
}

std::vector<std::string> gather_host_names(Communicator& comm) {
  std::array<char, kNameBytes> mine{};
  PARADIFF_CHECK(gethostname(mine.data(), kNameBytes - 1) == 0, "gethostname failed");
  const auto n = static_cast<size_t>(comm.size());
  std::vector<char> all(n * kNameBytes);
  const std::vector<size_t> counts(n, kNameBytes);
  comm.allgatherv(mine.data(), kNameBytes, all.data(), counts, exclusive_offsets(counts));
  std::vector<std::string> out;
  for (size_t r = 0; r < n; ++r) out.emplace_back(all.data() + r * kNameBytes);
  return out;
}

int ranks_on_host_of(const std::vector<std::string>& hosts, int rank) {
  return static_cast<int>(
      std::count(hosts.begin(), hosts.end(), hosts.at(static_cast<size_t>(rank))));
}

}  // namespace paradiff::dist
