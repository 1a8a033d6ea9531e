// Maps a recipient domain (and the message's priority) to its Destination:
// the [[route]]s in file order, first match wins; then [[domains]] go to
// the local Maildirs; everything else is delivered by MX.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "gateway/config/config.h"
#include "gateway/queue/queue_manager.h"

namespace mxgate {

// The asynchronous transports, built by the daemon. A null one makes its
// routes unavailable (recipients are deferred with a clear reply).
struct Transports {
  Transport* hosts = nullptr;  // a route's own host list (forward, smarthost)
  Transport* mx = nullptr;     // MX resolution of the recipient domain (mx, backup_mx)
};

// The router keeps config alive: Destinations point into its routes.
std::function<Destination(const std::string& domain, int priority)> makeRouter(
    std::shared_ptr<const Config> config, Transports transports);

}  // namespace mxgate
