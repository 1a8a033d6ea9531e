// The queue's SMTP transport: a route's own hosts (forward, smarthost) or
// the recipient domain's MX hosts (mx, backup_mx), through the outbound
// client in gateway/smtp_client with one connection cache, so consecutive
// messages to a host share a connection.
//
// Runs only on the queue's event loop (the cache is created there on first
// use). shutdown() must be called before that loop is destroyed
// (QueueManager::Options::on_stopped does it).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "gateway/queue/delivery_agent.h"
#include "gateway/smtp_client/connection_cache.h"
#include "gateway/smtp_client/types.h"

namespace mxgate {

class Resolver;

class SmtpTransport : public Transport {
 public:
  struct Options {
    Resolver* resolver = nullptr;
    std::string hostname;  // our EHLO name; MX hosts by this name are ourselves
    smtp_client::Timeouts timeouts;
    uint16_t mx_port = 25;
  };
  explicit SmtpTransport(Options options);
  ~SmtpTransport() override;

  asio::awaitable<std::vector<DeliveryResult>> deliver(const TransportJob& job) override;
  // Drops idle connections (without QUIT). Safe to call more than once.
  void shutdown();

 private:
  smtp_client::ClientOptions clientOptions(const RouteConfig* route);

  Options options_;
  std::unique_ptr<smtp_client::ConnectionCache> cache_;
  // TLS contexts by CA file ("" = system CAs): made once, shared by connections.
  std::map<std::string, std::shared_ptr<asio::ssl::context>> tls_;
};

// The queue's one-line reply for a client reply: "<enhanced> <description>".
DeliveryResult toDeliveryResult(const smtp_client::SmtpReply& reply, bool dns_error);

}  // namespace mxgate
