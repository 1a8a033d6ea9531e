// The daemon's control socket: <state_dir>/control.sock, a Unix stream
// socket (mode 0660) through which `mxgatectl queue flush|hold|...` steers
// the running queue. One request line per connection, "queue <command>",
// answered with the command's reply text, then the connection is closed.
// Anything else gets "error ...".
#pragma once

#include <memory>
#include <string>

#include <asio/io_context.hpp>

namespace mxgate {

class QueueManager;

class ControlServer {
 public:
  // Replaces a stale socket file at path. queue may be null (delivery on
  // hold): queue commands then answer with an error saying so.
  // Throws std::system_error if the socket cannot be created.
  ControlServer(asio::io_context& io, std::string path, QueueManager* queue);
  ~ControlServer();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The client side, for mxgatectl: sends one request, returns the reply.
// Throws std::runtime_error with a clear message when the daemon cannot be
// reached.
std::string controlRequest(const std::string& path, const std::string& request);

}  // namespace mxgate
