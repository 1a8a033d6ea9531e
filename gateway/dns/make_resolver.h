// Builds the daemon's resolver from [dns]: a static zone file when one is
// configured, otherwise c-ares talking to the configured (or system) servers.
#pragma once

#include <memory>

#include "gateway/config/config.h"
#include "gateway/dns/resolver.h"

namespace mxgate {

// Throws ConfigError (zone file errors) or std::runtime_error (c-ares set-up).
std::unique_ptr<Resolver> makeResolver(const DnsConfig& dns);

}  // namespace mxgate
