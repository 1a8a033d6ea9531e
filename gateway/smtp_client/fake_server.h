// A scripted SMTP server for the client's tests, running as coroutines on
// the test's io_context (127.0.0.1, a free port).
//
// Every command line is recorded per connection and answered by the
// script (reply(cmd)), else by a default: EHLO lists `extensions` (plus
// STARTTLS when a TLS context is set and TLS is not yet active, plus AUTH
// when mechanisms are set), STARTTLS upgrades, AUTH PLAIN/LOGIN check
// user and password, DATA takes the message up to "." and the script is
// asked for the end of data as the command ".". Script replies may span
// lines ("250-a\r\n250 b"); two special replies: kClose (drop the
// connection without a word) and kHang (say nothing more on this connection,
// but keep reading).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

namespace mxgate::smtp_client::testing {

inline constexpr const char* kClose = "<close>";
inline constexpr const char* kHang = "<hang>";

class FakeSmtpServer {
 public:
  struct Session;  // one connection's state, also what the test can look at

  explicit FakeSmtpServer(asio::io_context& ctx);
  ~FakeSmtpServer();

  uint16_t port() const { return port_; }
  // Closes the listener and every connection.
  void stop();
  // Closes every connection (as an idle timeout would), still listening.
  void dropConnections();

  // Script: a reply for the command (as received, without CRLF; "." for the
  // end of data), or nullopt for the default.
  std::function<std::optional<std::string>(const std::string& cmd)> reply;
  std::string greeting = "220 fake.test ESMTP";
  std::vector<std::string> extensions = {"PIPELINING", "8BITMIME", "SIZE 10000000", "DSN",
                                         "ENHANCEDSTATUSCODES"};
  std::shared_ptr<asio::ssl::context> tls;   // offer STARTTLS
  std::vector<std::string> auth_mechanisms;  // e.g. {"PLAIN", "LOGIN"}
  std::string user = "user", password = "secret";

  // What was received, per connection in accept order.
  struct Record {
    std::vector<std::string> commands;
    // For each command: complete lines already waiting behind it when it was
    // read (more than 0 only when the client pipelined).
    std::vector<size_t> waiting;
    std::vector<std::string> messages;  // DATA bytes as on the wire, up to and including ".\r\n"
    bool tls = false;
    std::string auth;  // the user that authenticated
  };
  std::vector<Record> records;
  size_t connections() const { return records.size(); }
  // Every command of every connection, in order.
  std::vector<std::string> allCommands() const;

 private:
  asio::awaitable<void> acceptLoop();
  asio::awaitable<void> serve(std::shared_ptr<Session> s);

  asio::io_context& ctx_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::weak_ptr<Session>> sessions_;
  bool stopped_ = false;
};

// A self-signed certificate (EC P-256) for CN=localhost with subjectAltNames
// DNS:localhost, DNS:mx.example.test and IP:127.0.0.1, also usable as its own
// trust anchor. cert_pem and key_pem are PEM text.
struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;
};
const TestCertificate& testCertificate();
std::shared_ptr<asio::ssl::context> serverTlsContext();

}  // namespace mxgate::smtp_client::testing
