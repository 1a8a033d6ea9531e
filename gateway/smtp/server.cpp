#include "gateway/smtp/server.h"

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "gateway/smtp/session.h"

namespace mxgate::smtp {

Server::Server(Services& services, int threads) : services_(services) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<asio::io_context>(1));
}

Server::~Server() = default;

void Server::bind(const std::vector<asio::ip::tcp::endpoint>& endpoints, ListenerKind kind) {
  for (const auto& ep : endpoints) {
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(*contexts_[0]);
    asio::error_code ec;
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(1024, ec);
    if (ec) {
      std::string where = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:"
                                               : ep.address().to_string() + ":";
      throw std::runtime_error("cannot listen on " + where + std::to_string(ep.port()) + ": " +
                               ec.message());
    }
    listeners_.push_back({std::move(acc), kind});
  }
}

asio::awaitable<void> Server::acceptLoop(asio::ip::tcp::acceptor& acceptor, ListenerKind kind) {
  while (acceptor.is_open()) {
    asio::io_context& target = *contexts_[next_++ % contexts_.size()];
    auto [ec, socket] =
        co_await acceptor.async_accept(target, asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: log, back off briefly, keep serving.
      spdlog::error("accept failed: {}", ec.message());
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      continue;
    }
    auto session = std::make_shared<Session>(std::move(socket), services_, kind);
    asio::co_spawn(
        target, [session]() { return session->run(); },
        [](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            spdlog::error("session ended by exception: {}", ex.what());
          }
        });
  }
}

void Server::run() {
  for (auto& l : listeners_)
    asio::co_spawn(*contexts_[0], acceptLoop(*l.acceptor, l.kind), asio::detached);
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& c : contexts_) guards.push_back(asio::make_work_guard(*c));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < contexts_.size(); ++i)
    threads.emplace_back([this, i] { contexts_[i]->run(); });
  contexts_[0]->run();
  for (auto& c : contexts_) c->stop();
  for (auto& t : threads) t.join();
}

void Server::stop(std::chrono::milliseconds grace) {
  asio::co_spawn(
      *contexts_[0],
      [this, grace]() -> asio::awaitable<void> {
        for (auto& l : listeners_) {
          asio::error_code ec;
          l.acceptor->close(ec);
        }
        // Idle sessions are told 421 now; busy ones finish their message
        // first. One cut off at the deadline never got its 250, so its
        // client will retry.
        services_.stopSessions();
        auto deadline = std::chrono::steady_clock::now() + grace;
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (services_.limiter.total() > 0 && std::chrono::steady_clock::now() < deadline) {
          t.expires_after(std::chrono::milliseconds(50));
          co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
        }
        if (services_.limiter.total() > 0)
          spdlog::info("stopping with {} session(s) still open", services_.limiter.total());
        for (auto& c : contexts_) c->stop();
      },
      asio::detached);
}

}  // namespace mxgate::smtp
