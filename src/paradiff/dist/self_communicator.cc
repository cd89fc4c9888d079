#include "paradiff/dist/self_communicator.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "paradiff/core/error.h"

namespace paradiff::dist {

namespace {
void check_peer(int peer, const char* what) {
  PARADIFF_CHECK(peer == 0, what, ": rank ", peer, " does not exist in a world of one");
}
}  // namespace

std::unique_ptr<Communicator> SelfCommunicator::split(int, int) const {
  return std::make_unique<SelfCommunicator>();
}

void SelfCommunicator::broadcast(void*, size_t, int root) {
  check_peer(root, "broadcast root");
}

void SelfCommunicator::alltoallv(const void* send, const std::vector<size_t>& send_counts,
                                 const std::vector<size_t>& send_offsets, void* recv,
                                 const std::vector<size_t>& recv_counts,
                                 const std::vector<size_t>& recv_offsets) {
  PARADIFF_CHECK(
      send_counts.size() == 1 && recv_counts.size() == 1 && send_counts[0] == recv_counts[0],
      "alltoallv in a world of one needs one matching count");
  std::memmove(static_cast<char*>(recv) + recv_offsets[0],
               static_cast<const char*>(send) + send_offsets[0], send_counts[0]);
}

void SelfCommunicator::allgatherv(const void* send, size_t bytes, void* recv,
                                  const std::vector<size_t>& counts,
                                  const std::vector<size_t>& offsets) {
  PARADIFF_CHECK(counts.size() == 1 && counts[0] == bytes,
                 "allgatherv in a world of one needs one matching count");
  std::memmove(static_cast<char*>(recv) + offsets[0], send, bytes);
}

void SelfCommunicator::sendrecv(const void* send, size_t send_bytes, int dest, void* recv,
                                size_t recv_bytes, int source, int) {
  check_peer(dest, "sendrecv destination");
  check_peer(source, "sendrecv source");
  PARADIFF_CHECK(send_bytes == recv_bytes, "sendrecv to self with different sizes");
  std::memmove(recv, send, send_bytes);
}

// A ring of degree 1 never sends to itself, so self sends are refused rather than buffered.
std::unique_ptr<Request> SelfCommunicator::isend(const void*, size_t, int dest, int) {
  check_peer(dest, "isend destination");
  throw Error("isend to self is not supported in a world of one");
}

std::unique_ptr<Request> SelfCommunicator::irecv(void*, size_t, int source, int) {
  check_peer(source, "irecv source");
  throw Error("irecv from self is not supported in a world of one");
}

void SelfCommunicator::abort(const std::string& message, int code) {
  std::fprintf(stderr, "paradiff: aborting: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace paradiff::dist
