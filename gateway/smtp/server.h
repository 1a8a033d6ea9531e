// Listening sockets and the event loops: one io_context per thread, each
// session pinned to one of them, so a session's state is only ever touched by
// its own thread. Accepting happens on loop 0, which hands sockets out round-robin.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "gateway/smtp/services.h"

namespace mxgate::smtp {

class Server {
 public:
  Server(Services& services, int threads);
  ~Server();

  // Binds every endpoint; its sessions know they came in on a `kind` listener.
  // Throws std::runtime_error naming the address.
  void bind(const std::vector<asio::ip::tcp::endpoint>& endpoints,
            ListenerKind kind = ListenerKind::kMx);
  // Starts accepting and runs the loops; returns after stop().
  void run();
  // Stops accepting, gives open sessions up to grace to finish, then stops the loops.
  void stop(std::chrono::milliseconds grace);

  asio::io_context& mainContext() { return *contexts_[0]; }
  int threads() const { return static_cast<int>(contexts_.size()); }

 private:
  struct Listener {
    std::unique_ptr<asio::ip::tcp::acceptor> acceptor;
    ListenerKind kind;
  };
  asio::awaitable<void> acceptLoop(asio::ip::tcp::acceptor& acceptor, ListenerKind kind);

  Services& services_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<Listener> listeners_;
  size_t next_ = 0;
};

}  // namespace mxgate::smtp
