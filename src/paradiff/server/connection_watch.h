// Whether a client is still connected, for requests whose answer is one body (nothing is written
// to the client while they wait, so a write cannot tell): the handler finds its connection's
// socket among the process's descriptors by the request's peer address, and asks whether the peer
// closed or reset it, so that the request can be cancelled and its place freed.
#pragma once

#include <string>

namespace paradiff::server {

class ConnectionWatch {
 public:
  // The connection from this peer (the request's remote address and port); not watched (never
  // hung up) when no socket of this process has that peer.
  ConnectionWatch(const std::string& peer_address, int peer_port);
  // True once the client closed or reset the connection (a half-close counts as gone).
  bool hung_up() const;

 private:
  std::string address_;
  int port_ = -1;
  int socket_ = -1;
};

}  // namespace paradiff::server
