// Shared fixture of the SMTP client tests: an io_context, a scripted server
// on it, short timeouts, and a way to run a coroutine to its end.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "gateway/smtp_client/connection.h"
#include "gateway/smtp_client/fake_server.h"

namespace mxgate::smtp_client::testing {

using namespace std::chrono_literals;

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() {
    opts.helo_name = "client.test";
    opts.tls = TlsPolicy::kNone;
    Timeouts& t = opts.timeouts;
    t.connect = t.greeting = t.command = t.tls_handshake = t.data_init = t.data_block =
        t.final_dot = t.rset = t.quit = 3s;
  }
  void TearDown() override {
    server.stop();
    ctx.restart();
    ctx.run_for(2s);
  }

  // Runs aw on ctx until it is done (the server keeps running), bounded.
  // REQUIRES: whatever aw refers to outlives this call.
  template <typename T>
  T run(asio::awaitable<T> aw, std::chrono::milliseconds bound = 20s) {
    std::optional<T> out;
    std::exception_ptr error;
    asio::co_spawn(ctx, std::move(aw), [&](std::exception_ptr e, T v) {
      error = e;
      if (!e) out = std::move(v);
      ctx.stop();
    });
    ctx.restart();
    ctx.run_for(bound);
    if (error) std::rethrow_exception(error);
    if (!out) throw std::runtime_error("the coroutine did not finish in time");
    return std::move(*out);
  }
  // Lets background work (QUITs, idle timers) run for a while.
  void idle(std::chrono::milliseconds d) {
    ctx.restart();
    ctx.run_for(d);
  }

  Endpoint endpoint(std::string name = "localhost") const {
    return {std::move(name), asio::ip::make_address("127.0.0.1"), server.port()};
  }

  // A message to rcpts with body (kept in this fixture).
  OutboundMessage message(std::vector<std::string> rcpts,
                          std::string body = "Subject: test\r\n\r\nhello\r\n") {
    bodies_.push_back(std::make_unique<std::string>(std::move(body)));
    OutboundMessage m;
    m.mail_from = "sender@example.org";
    for (auto& r : rcpts) m.rcpts.push_back({r, "", ""});
    m.parts.push_back(*bodies_.back());
    return m;
  }

  // Opens a connection, sends m, says QUIT. *open_failure: the open() reply.
  DeliveryReport openAndSend(const OutboundMessage& m, SmtpReply* open_failure = nullptr,
                             const std::string& name = "localhost") {
    auto fn = [&]() -> asio::awaitable<DeliveryReport> {
      SmtpConnection c(ctx.get_executor(), opts);
      SmtpReply r = co_await c.open(endpoint(name));
      if (open_failure) *open_failure = r;
      if (!r.empty()) co_return DeliveryReport{};
      DeliveryReport rep = co_await c.send(m);
      last_caps = c.capabilities();
      last_tls = c.tlsActive();
      last_usable = c.usable();
      co_await c.quit();
      co_return rep;
    };
    return run(fn());
  }

  asio::io_context ctx;
  FakeSmtpServer server{ctx};
  ClientOptions opts;
  Capabilities last_caps;
  bool last_tls = false;
  bool last_usable = false;

 private:
  std::vector<std::unique_ptr<std::string>> bodies_;
};

// The commands of a connection whose verb is verb ("MAIL", "RCPT", ...).
inline std::vector<std::string> commandsStarting(const std::vector<std::string>& cmds,
                                                 const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& c : cmds) {
    if (c.starts_with(prefix)) out.push_back(c);
  }
  return out;
}

}  // namespace mxgate::smtp_client::testing
