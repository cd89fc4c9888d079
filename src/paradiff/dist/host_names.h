// Which host each rank runs on: every rank's host name, gathered (collective).
#pragma once

#include <string>
#include <vector>

#include "paradiff/dist/communicator.h"

namespace paradiff::dist {

// Host names by rank of `comm`, on every rank.
std::vector<std::string> gather_host_names(Communicator& comm);

// How many of `hosts` equal hosts[rank]: the ranks sharing that rank's host.
int ranks_on_host_of(const std::vector<std::string>& hosts, int rank);

}  // namespace paradiff::dist
