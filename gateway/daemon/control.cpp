#include "gateway/daemon/control.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/streambuf.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "gateway/queue/queue_manager.h"

namespace mxgate {

using Local = asio::local::stream_protocol;

struct ControlServer::Impl {
  Impl(asio::io_context& io, std::string p, QueueManager* q)
      : path(std::move(p)), queue(q), acceptor(io) {}

  asio::awaitable<void> serve(Local::socket sock) {
    asio::streambuf buf(4096);  // bounded: one short request line
    std::string reply;
    try {
      size_t n = co_await asio::async_read_until(sock, buf, '\n', asio::use_awaitable);
      std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + n);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (line.rfind("queue ", 0) != 0) {
        reply = "error unknown request";
      } else if (queue == nullptr) {
        reply = "error delivery is on hold (delivery.hold = true): the queue is not running";
      } else {
        auto ex = sock.get_executor();
        // The queue answers on its own thread; hop back here to write.
        reply = co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::string)>(
            [&](auto handler) {
              auto h = std::make_shared<decltype(handler)>(std::move(handler));
              queue->command(line.substr(6), [h, ex](std::string r) {
                asio::post(ex, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
              });
            },
            asio::use_awaitable);
        spdlog::info("control: {} -> {}", line, reply.substr(0, reply.find('\n')));
      }
      reply += "\n";
      co_await asio::async_write(sock, asio::buffer(reply), asio::use_awaitable);
    } catch (const std::exception& e) {
      spdlog::warn("control: {}", e.what());
    }
  }

  asio::awaitable<void> accept() {
    while (true) {
      auto [ec, sock] =
          co_await acceptor.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted) co_return;
      if (ec) continue;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(sock)), asio::detached);
    }
  }

  std::string path;
  QueueManager* queue;
  Local::acceptor acceptor;
};

ControlServer::ControlServer(asio::io_context& io, std::string path, QueueManager* queue)
    : impl_(std::make_unique<Impl>(io, std::move(path), queue)) {
  ::unlink(impl_->path.c_str());  // a stale socket of an earlier run
  Local::endpoint ep(impl_->path);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  ::chmod(impl_->path.c_str(), 0660);
  asio::co_spawn(io, impl_->accept(), asio::detached);
}

ControlServer::~ControlServer() {
  asio::error_code ec;
  impl_->acceptor.close(ec);
  ::unlink(impl_->path.c_str());
}

std::string controlRequest(const std::string& path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    ::close(fd);
    throw std::runtime_error("control socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    throw std::runtime_error("cannot reach the running daemon at " + path + ": " +
                             std::strerror(err) + " (is mxgate running with this configuration?)");
  }
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string line = request + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ::close(fd);
    throw std::runtime_error("cannot send to the daemon: " + std::string(std::strerror(errno)));
  }
  std::string reply;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (n < 0)
    throw std::runtime_error("no answer from the daemon: " + std::string(std::strerror(errno)));
  while (!reply.empty() && reply.back() == '\n') reply.pop_back();
  return reply;
}

}  // namespace mxgate
