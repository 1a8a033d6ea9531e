// Turns the queue's "these recipients failed for good" into a DSN: built by
// buildBounce (bounce.h), spooled like any accepted message (so a crash
// cannot lose it once written), then queued for delivery from the null
// sender. A bounce that may not be sent is only logged, with the reason.
#pragma once

#include <functional>
#include <vector>

#include "gateway/config/config.h"
#include "gateway/queue/queue_manager.h"
#include "gateway/spool/spool.h"

namespace mxgate {

using FailedHandler = std::function<void(const LoadedMessage&, const std::vector<size_t>&,
                                         const std::vector<DeliveryResult>&)>;

// *queue is read when a bounce has been spooled (it may be set after this
// call; null: the bounce stays in the spool for the next start).
FailedHandler makeBounceSender(const DeliveryConfig& delivery, std::string hostname, Spool& spool,
                               QueueManager* const* queue);

}  // namespace mxgate
