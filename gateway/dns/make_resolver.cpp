#include "gateway/dns/make_resolver.h"

#include <algorithm>

#include "gateway/dns/cares_backend.h"
#include "gateway/dns/static_zone.h"

namespace mxgate {

std::unique_ptr<Resolver> makeResolver(const DnsConfig& dns) {
  ResolverOptions opts;
  opts.timeout = dns.timeout;
  opts.negative_ttl = dns.negative_ttl;
  opts.max_entries = static_cast<size_t>(dns.cache_size);
  if (!dns.static_zones.empty()) {
    auto zone = std::make_unique<StaticZoneBackend>();
    zone->loadFile(dns.static_zones);
    return std::make_unique<Resolver>(std::move(zone), opts);
  }
  CaresOptions cares;
  for (const std::string& s : dns.servers) cares.servers += (cares.servers.empty() ? "" : ",") + s;
  // Two tries must fit in the lookup deadline: t + 2t = 3t < timeout.
  cares.timeout =
      std::max<std::chrono::milliseconds>(std::chrono::milliseconds(50), dns.timeout / 4);
  return std::make_unique<Resolver>(std::make_unique<CaresBackend>(cares), opts);
}

}  // namespace mxgate
