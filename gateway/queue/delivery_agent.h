// The seams between the queue manager and the ways a recipient is served:
// a blocking per-recipient DeliveryAgent (local Maildir, run on a worker
// pool) and an asynchronous Transport (SMTP to a downstream host, smarthost
// or MX, one transaction for several recipients).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/awaitable.hpp>

#include "gateway/pipeline/types.h"
#include "gateway/spool/spool_record.h"

namespace mxgate {

struct RouteConfig;

struct DeliveryResult {
  enum class Kind { kDelivered, kDeferred, kFailed };
  DeliveryResult() = default;
  DeliveryResult(Kind k, std::string r) : kind(k), reply(std::move(r)) {}

  Kind kind = Kind::kDeferred;
  // "<enhanced status> <text>", one line, e.g. "4.2.2 mailbox full".
  std::string reply;
  // The destination could not be resolved (NXDOMAIN, SERVFAIL, DNS timeout,
  // no address): counts toward [delivery] dns_error_limit.
  bool dns_error = false;
  // No host of the destination could be reached or every one answered 4xx
  // at connection level: the destination is backed off for a while.
  bool destination_down = false;
  std::string remote;  // the host that answered, "name[ip]:port", for logs and DSNs
};

class DeliveryAgent {
 public:
  virtual ~DeliveryAgent() = default;
  // Delivers message (the spooled bytes) to one recipient of meta.
  // Runs on a queue worker thread: blocking I/O is allowed, and it is
  // never called on an event loop. kDelivered means the message is durable
  // at the destination; anything not known to be final must be kDeferred.
  // Must not throw (the queue treats an exception as kDeferred). Called
  // concurrently for different recipients.
  virtual DeliveryResult deliver(const SpoolMeta& meta, std::string_view message,
                                 const Recipient& rcpt) = 0;
};

// A spooled message as read back for delivery, shared by every delivery job
// of the message (read once, never copied per recipient).
struct LoadedMessage {
  SpoolMeta meta;
  std::string body;
};

struct TransportJob {
  std::shared_ptr<const LoadedMessage> message;
  std::vector<const Recipient*> rcpts;  // point into message->meta.envelope
  std::string domain;                   // the recipients' domain, lowercase
  const RouteConfig* route = nullptr;   // the matching [[route]], if any
};

class Transport {
 public:
  virtual ~Transport() = default;
  // One result per recipient of job, in order. Runs on the queue's event
  // loop and must not block it. Must not throw. The job lives until the
  // returned awaitable completes.
  virtual asio::awaitable<std::vector<DeliveryResult>> deliver(const TransportJob& job) = 0;
};

}  // namespace mxgate
