#include "gateway/smtp_client/delivery.h"

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/this_coro.hpp>

#include "gateway/smtp_client/reply.h"

namespace mxgate::smtp_client {

namespace {

// Whether a recipient with this answer goes on to the next host.
bool tryNextHost(const SmtpReply& r) {
  return r.empty() || r.outcome() == Outcome::kTemporary ||
         (r.outcome() == Outcome::kPermanent && r.host_level);
}

}  // namespace

asio::awaitable<DeliveryReport> deliverToEndpoints(const std::vector<Endpoint>& endpoints,
                                                   ConnectionCache* cache,
                                                   const OutboundMessage& msg,
                                                   const ClientOptions& options) {
  auto ex = co_await asio::this_coro::executor;
  DeliveryReport report;
  report.rcpts.resize(msg.rcpts.size());
  if (msg.rcpts.empty()) co_return report;
  if (endpoints.empty()) {
    for (SmtpReply& r : report.rcpts) {
      r = localReply(451, "4.4.4", "no host to deliver to", Stage::kNone, "", true);
    }
    co_return report;
  }
  std::vector<std::string> keys;
  for (const Endpoint& e : endpoints) keys.push_back(ConnectionCache::keyOf(e, options));
  // An idle connection to any of the hosts goes first: it saves a connect,
  // and a host in the cache answered a moment ago.
  std::vector<size_t> order(endpoints.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (cache) {
    auto cached =
        std::find_if(order.begin(), order.end(), [&](size_t i) { return cache->has(keys[i]); });
    if (cached != order.end()) std::rotate(order.begin(), cached, cached + 1);
  }

  std::vector<size_t> pending(msg.rcpts.size());
  for (size_t i = 0; i < pending.size(); ++i) pending[i] = i;
  OutboundMessage sub = msg;
  for (size_t i : order) {
    sub.rcpts.clear();
    for (size_t p : pending) sub.rcpts.push_back(msg.rcpts[p]);
    std::unique_ptr<SmtpConnection> conn = cache ? cache->take(keys[i]) : nullptr;
    bool reused = conn != nullptr;
    DeliveryReport r;
    for (;;) {
      if (!conn) {
        conn = std::make_unique<SmtpConnection>(ex, options);
        SmtpReply failure = co_await conn->open(endpoints[i]);
        if (!failure.empty()) {
          r.rcpts.assign(sub.rcpts.size(), failure);
          break;
        }
      }
      r = co_await conn->send(sub);
      if (reused && conn->lostBeforeStart()) {
        // The cached connection had died; the message never started there.
        conn->close();
        conn.reset();
        reused = false;
        continue;
      }
      break;
    }
    if (conn) {
      if (cache && conn->usable()) {
        cache->put(std::move(conn));
      } else {
        asio::co_spawn(ex, quitAndClose(std::move(conn)), asio::detached);
      }
    }
    std::vector<size_t> next;
    const SmtpReply* host_failure = nullptr;
    for (size_t j = 0; j < pending.size(); ++j) {
      report.rcpts[pending[j]] = r.rcpts[j];
      if (tryNextHost(r.rcpts[j])) next.push_back(pending[j]);
      if (r.rcpts[j].host_level && !host_failure) host_failure = &r.rcpts[j];
    }
    if (host_failure) report.host_failures.push_back(host_failure->describe());
    pending = std::move(next);
    if (pending.empty()) break;
  }
  co_return report;
}

asio::awaitable<DeliveryReport> deliver(Resolver& resolver, ConnectionCache* cache,
                                        const SmtpTarget& target, const OutboundMessage& msg,
                                        const DeliveryOptions& options) {
  Resolution res = co_await resolveTarget(resolver, target, options.resolve);
  if (res.status != Resolution::Status::kOk) {
    DeliveryReport report;
    res.error.host = target.host;
    report.rcpts.assign(msg.rcpts.size(), res.error);
    report.dns_error = res.dns_error;
    co_return report;
  }
  std::vector<Endpoint> endpoints = endpointsOf(res, target.port, options.max_addresses);
  co_return co_await deliverToEndpoints(endpoints, cache, msg, options.client);
}

}  // namespace mxgate::smtp_client
