// One outbound SMTP session to one server address: connect, greeting,
// EHLO (HELO fallback), STARTTLS per policy, AUTH, then any number of
// transactions (send), then QUIT.
//
// Runs on the executor given at construction; not thread-safe (one
// coroutine at a time uses a connection). Every wait is bounded by the
// matching ClientOptions::timeouts entry.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>

#include "gateway/smtp_client/reply.h"
#include "gateway/smtp_client/types.h"

namespace mxgate::smtp_client {

// One address to connect to, with the name it was found under (used for
// TLS SNI and certificate checks, and in every reply's host).
struct Endpoint {
  std::string name;  // MX or target host name; the address as text for IP literals
  asio::ip::address address;
  uint16_t port = 25;

  // "name[address]:port"
  std::string label() const;
};

// What the server offered in its (last) EHLO reply.
struct Capabilities {
  bool esmtp = false;  // EHLO was accepted (else HELO)
  bool pipelining = false;
  bool starttls = false;
  bool eight_bit_mime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool size_offered = false;
  uint64_t size_limit = 0;  // 0: no limit announced
  bool auth_plain = false;
  bool auth_login = false;
};

// A TLS client context for ClientOptions::tls_context, trusting ca_file
// (empty: the system's CA paths). Throws std::system_error if ca_file
// cannot be loaded. Verification itself is switched on per connection,
// only under TlsPolicy::kVerify.
std::shared_ptr<asio::ssl::context> makeClientTlsContext(const std::string& ca_file);

class SmtpConnection {
 public:
  SmtpConnection(asio::any_io_executor executor, ClientOptions options);
  ~SmtpConnection();
  SmtpConnection(const SmtpConnection&) = delete;
  SmtpConnection& operator=(const SmtpConnection&) = delete;

  // Connects and gets the session ready for MAIL. Returns an empty reply
  // on success, else the failure (host_level; temporary or permanent).
  asio::awaitable<SmtpReply> open(Endpoint endpoint);

  // One transaction for all of msg's recipients. On a connection that has
  // carried a transaction before, RSET goes first (pipelined with MAIL when
  // the server offers PIPELINING). Never throws for network or protocol
  // failures: they become temporary replies for the recipients concerned.
  asio::awaitable<DeliveryReport> send(const OutboundMessage& msg);

  // Polite close: QUIT (bounded by timeouts.quit), then close. Safe to call
  // on a broken connection.
  asio::awaitable<void> quit();
  void close();

  // Open, not broken by a failure, and in a state to start a transaction.
  bool usable() const { return open_ && !broken_; }
  // The last send() found the connection dead before the server answered
  // any of its commands, on a connection that had been used before: the
  // message was not started there, and a fresh connection may retry it.
  bool lostBeforeStart() const { return lost_before_start_; }

  // An idle connection with input waiting (a 421, EOF or a reset): the
  // server has given up on it. Checked without blocking.
  bool peerSpoke();

  const Capabilities& capabilities() const { return caps_; }
  const Endpoint& endpoint() const { return endpoint_; }
  const std::string& label() const { return label_; }
  bool tlsActive() const { return tls_ != nullptr; }
  bool authenticated() const { return authenticated_; }
  // send() calls that reached the server.
  uint64_t transactions() const { return transactions_; }
  std::chrono::steady_clock::time_point openedAt() const { return opened_at_; }
  const ClientOptions& options() const { return options_; }

 private:
  struct Pending;  // a command sent, waiting for its reply

  // I/O. Failures mark the connection broken and return a local reply.
  asio::awaitable<SmtpReply> readReply(Stage stage, std::chrono::milliseconds timeout);
  asio::awaitable<bool> readLine(std::chrono::milliseconds timeout, std::string_view* line,
                                 SmtpReply* failure, Stage stage);
  asio::awaitable<bool> writeAll(std::string_view data, std::chrono::milliseconds timeout,
                                 SmtpReply* failure, Stage stage);
  asio::awaitable<SmtpReply> command(std::string_view line, Stage stage,
                                     std::chrono::milliseconds timeout);
  SmtpReply ioFailure(const std::error_code& ec, Stage stage, std::string_view doing);

  // Session setup steps; each returns an empty reply or the failure.
  asio::awaitable<SmtpReply> hello();
  asio::awaitable<SmtpReply> startTls();
  asio::awaitable<SmtpReply> authenticate();
  void parseEhlo(const std::vector<std::string>& lines);
  SmtpReply hostFailure(SmtpReply r);

  // Streams msg's data after a 354; returns an empty reply or the failure.
  asio::awaitable<SmtpReply> writeData(const OutboundMessage& msg);

  asio::any_io_executor executor_;
  ClientOptions options_;
  asio::ip::tcp::socket socket_;
  std::shared_ptr<asio::ssl::context> tls_ctx_;  // outlives tls_
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  Endpoint endpoint_;
  std::string label_;
  Capabilities caps_;
  ReplyParser parser_;

  std::string in_;  // received, not yet consumed from in_pos_ on
  size_t in_pos_ = 0;
  std::string out_;   // commands being batched
  std::string data_;  // the DATA chunk being encoded; kept for its capacity

  bool open_ = false;
  bool broken_ = false;     // no further transaction possible
  bool io_failed_ = false;  // cannot even say QUIT
  bool authenticated_ = false;
  bool lost_before_start_ = false;
  uint64_t transactions_ = 0;
  std::chrono::steady_clock::time_point opened_at_;
};

// Whether an address may go into MAIL FROM:<...> or RCPT TO:<...>: no CR,
// LF, NUL or other control byte (command injection), no '<' or '>'.
bool isCleanPath(std::string_view address);

}  // namespace mxgate::smtp_client
