#include "gateway/smtp_client/connection_cache.h"

#include <poll.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>

namespace mxgate::smtp_client {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

struct ConnectionCache::Sweeper {
  explicit Sweeper(asio::any_io_executor ex, ConnectionCache* c) : timer(std::move(ex)), cache(c) {}
  asio::steady_timer timer;
  ConnectionCache* cache;
  bool armed = false;
  Clock::time_point at;
};

asio::awaitable<void> quitAndClose(std::unique_ptr<SmtpConnection> conn) {
  co_await conn->quit();
}

ConnectionCache::ConnectionCache(asio::any_io_executor executor, CacheOptions options)
    : executor_(std::move(executor)),
      options_(options),
      sweeper_(std::make_shared<Sweeper>(executor_, this)) {}

ConnectionCache::~ConnectionCache() {
  sweeper_->cache = nullptr;
  sweeper_->timer.cancel();
  for (auto& [key, idle] : idle_) idle.conn->close();
}

std::string ConnectionCache::keyOf(const Endpoint& endpoint, const ClientOptions& options) {
  std::string key = endpoint.label();
  key += '|';
  key += std::to_string(static_cast<int>(options.tls));
  key += '|';
  key += options.auth_user;
  key += '|';
  key += options.helo_name;
  return key;
}

void ConnectionCache::retire(std::unique_ptr<SmtpConnection> conn, uint64_t* counter) {
  ++*counter;
  asio::co_spawn(executor_, quitAndClose(std::move(conn)), asio::detached);
}

std::unique_ptr<SmtpConnection> ConnectionCache::take(const std::string& key) {
  for (;;) {
    auto [first, last] = idle_.equal_range(key);
    if (first == last) return nullptr;
    // Newest first: the one least likely to have been dropped by the server.
    auto it = std::prev(last);
    std::unique_ptr<SmtpConnection> conn = std::move(it->second.conn);
    idle_.erase(it);
    if (!conn->usable() || conn->peerSpoke()) {
      ++stats_.stale;
      conn->close();
      continue;
    }
    ++stats_.reused;
    return conn;
  }
}

void ConnectionCache::put(std::unique_ptr<SmtpConnection> conn) {
  if (!conn) return;
  const auto now = Clock::now();
  const std::string key = keyOf(conn->endpoint(), conn->options());
  if (!conn->usable() || now - conn->openedAt() >= options_.max_age ||
      (options_.max_messages > 0 && conn->transactions() >= options_.max_messages) ||
      idle_.count(key) >= options_.max_idle_per_key || idle_.size() >= options_.max_idle ||
      options_.idle_timeout.count() <= 0) {
    retire(std::move(conn), &stats_.retired);
    return;
  }
  ++stats_.stored;
  idle_.emplace(key, Idle{std::move(conn), now + options_.idle_timeout});
  arm();
}

void ConnectionCache::closeAll() {
  for (auto& [key, idle] : idle_) retire(std::move(idle.conn), &stats_.retired);
  idle_.clear();
  sweeper_->armed = false;
  sweeper_->timer.cancel();
}

void ConnectionCache::sweep() {
  const auto now = Clock::now();
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (it->second.expires <= now) {
      retire(std::move(it->second.conn), &stats_.expired);
      it = idle_.erase(it);
    } else {
      ++it;
    }
  }
}

void ConnectionCache::arm() {
  if (idle_.empty()) return;
  Clock::time_point next = Clock::time_point::max();
  for (const auto& [key, idle] : idle_) next = std::min(next, idle.expires);
  Sweeper& s = *sweeper_;
  if (s.armed && s.at <= next) return;
  s.armed = true;
  s.at = next;
  s.timer.expires_at(next);
  s.timer.async_wait([weak = std::weak_ptr<Sweeper>(sweeper_)](std::error_code ec) {
    auto s = weak.lock();
    if (!s || !s->cache || ec) return;  // re-armed earlier, or the cache is gone
    s->armed = false;
    s->cache->sweep();
    s->cache->arm();
  });
}

}  // namespace mxgate::smtp_client
