#include "paradiff/server/connection_watch.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <utility>

namespace paradiff::server {

namespace {

// The peer of a connected socket as (address, port); port -1 when it has none.
std::pair<std::string, int> peer_of(int socket) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getpeername(socket, reinterpret_cast<sockaddr*>(&address), &length) != 0) return {"", -1};
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    return {text, ntohs(v4->sin_port)};
  }
  if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    return {text, ntohs(v6->sin6_port)};
  }
  return {"", -1};
}

}  // namespace

ConnectionWatch::ConnectionWatch(const std::string& peer_address, int peer_port)
    : address_(peer_address), port_(peer_port) {
  DIR* fds = opendir("/proc/self/fd");
  if (fds == nullptr) return;
  while (const dirent* entry = readdir(fds)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    struct stat st {};
    if (*end != '\0' || fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (peer_of(static_cast<int>(fd)) == std::make_pair(address_, port_)) {
      socket_ = static_cast<int>(fd);
      break;
    }
  }
  closedir(fds);
}

bool ConnectionWatch::hung_up() const {
  if (socket_ < 0) return false;
  // The socket is the request's connection as long as the handler runs (the server closes it
  // after); the peer check guards against anything else.
  pollfd p{socket_, POLLRDHUP, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
  return peer_of(socket_) != std::make_pair(address_, port_);
}

}  // namespace paradiff::server
