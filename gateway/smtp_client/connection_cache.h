// Idle SMTP connections kept for the next message to the same server.
//
// Reuse rules (after Postfix's connection cache):
//  - a connection is kept only if usable after its transaction, younger
//    than max_age, and below max_messages transactions; the next send() on
//    it starts with RSET (pipelined with MAIL when offered);
//  - an idle connection is closed (with QUIT) after idle_timeout;
//  - at most max_idle_per_key idle connections per key, where the key is
//    the endpoint plus everything that shaped the session (TLS policy, AUTH
//    user, HELO name): a connection is never reused with other settings;
//  - take() skips connections the server has closed or spoken on since
//    (an idle server says nothing until asked, so unread input means a 421
//    or EOF). A connection that still dies before its first reply shows
//    SmtpConnection::lostBeforeStart(), and deliverToEndpoints() retries
//    once on a fresh connection.
//
// Bound to one executor: call it only from coroutines running there (one
// cache per event-loop thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <asio/any_io_executor.hpp>

#include "gateway/smtp_client/connection.h"

namespace mxgate::smtp_client {

struct CacheOptions {
  std::chrono::milliseconds idle_timeout = 5s;
  uint64_t max_messages = 100;  // transactions per connection; 0: no limit
  std::chrono::milliseconds max_age = 300s;
  size_t max_idle_per_key = 4;
  size_t max_idle = 1000;  // idle connections in all
};

struct CacheStats {
  uint64_t stored = 0;   // connections put and kept
  uint64_t reused = 0;   // taken for another message
  uint64_t expired = 0;  // closed after idle_timeout
  uint64_t stale = 0;    // found closed by the server at take()
  uint64_t retired = 0;  // not kept: unusable, too old, too many messages or idle ones
};

class ConnectionCache {
 public:
  explicit ConnectionCache(asio::any_io_executor executor, CacheOptions options = {});
  // Closes the idle connections at once (no QUIT).
  ~ConnectionCache();
  ConnectionCache(const ConnectionCache&) = delete;
  ConnectionCache& operator=(const ConnectionCache&) = delete;

  static std::string keyOf(const Endpoint& endpoint, const ClientOptions& options);

  // The most recently stored idle connection for key that still looks
  // alive, or null.
  std::unique_ptr<SmtpConnection> take(const std::string& key);
  bool has(const std::string& key) const { return idle_.count(key) > 0; }
  // Keeps conn for reuse if the rules allow; else QUIT and close in the
  // background.
  void put(std::unique_ptr<SmtpConnection> conn);
  // QUIT to every idle connection, in the background.
  void closeAll();

  size_t idleCount() const { return idle_.size(); }
  const CacheStats& stats() const { return stats_; }

 private:
  struct Idle {
    std::unique_ptr<SmtpConnection> conn;
    std::chrono::steady_clock::time_point expires;
  };
  struct Sweeper;

  // QUIT and close in the background, counted in *counter.
  void retire(std::unique_ptr<SmtpConnection> conn, uint64_t* counter);
  void sweep();
  void arm();

  asio::any_io_executor executor_;
  CacheOptions options_;
  std::multimap<std::string, Idle> idle_;
  CacheStats stats_;
  std::shared_ptr<Sweeper> sweeper_;  // its timer handler holds only a weak_ptr
};

// QUITs and closes conn; for asio::co_spawn(..., detached).
asio::awaitable<void> quitAndClose(std::unique_ptr<SmtpConnection> conn);

}  // namespace mxgate::smtp_client
