// The seam between the queue manager and the ways a recipient can be served
// (local Maildir now; SMTP relay, smarthost and MX delivery later).
#pragma once

#include <string>
#include <string_view>

#include "gateway/pipeline/types.h"
#include "gateway/spool/spool_record.h"

namespace mxgate {

struct DeliveryResult {
  enum class Kind { kDelivered, kDeferred, kFailed };
  Kind kind = Kind::kDeferred;
  // "<enhanced status> <text>", one line, e.g. "4.2.2 mailbox full".
  std::string reply;
};

class DeliveryAgent {
 public:
  virtual ~DeliveryAgent() = default;
  // Delivers message (the spooled bytes) to one recipient of meta.
  // Runs on the queue's worker thread: blocking I/O is allowed, and it is
  // never called on an event loop. kDelivered means the message is durable
  // at the destination; anything not known to be final must be kDeferred.
  // Must not throw (the queue treats an exception as kDeferred).
  virtual DeliveryResult deliver(const SpoolMeta& meta, std::string_view message,
                                 const Recipient& rcpt) = 0;
};

}  // namespace mxgate
