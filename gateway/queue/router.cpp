#include "gateway/queue/router.h"

namespace mxgate {

std::function<Destination(const std::string& domain, int priority)> makeRouter(
    std::shared_ptr<const Config> config, Transports t) {
  return [config, t](const std::string& domain, int priority) {
    Destination d;
    auto viaMx = [&](const RouteConfig* r) {
      d.key = "mx:" + domain;
      d.transport = t.mx;
      d.route = r;
      if (t.mx == nullptr) d.unavailable = "4.4.0 MX delivery is not available";
    };
    for (const RouteConfig& r : config->delivery.routes) {
      if (!r.matches(domain, priority)) continue;
      switch (r.type) {
        case RouteConfig::Type::kLocal:
          d.key = "local";
          d.route = &r;
          return d;
        case RouteConfig::Type::kForward:
        case RouteConfig::Type::kSmarthost:
          d.key = "route:" + r.name;
          d.transport = t.hosts;
          d.route = &r;
          if (t.hosts == nullptr) d.unavailable = "4.4.0 route " + r.name + " is not available";
          return d;
        case RouteConfig::Type::kMx:
        case RouteConfig::Type::kBackupMx:
          viaMx(&r);
          return d;
      }
    }
    if (domain.empty() || config->findDomain(domain) != nullptr) {
      d.key = "local";
      return d;
    }
    viaMx(nullptr);
    return d;
  };
}

}  // namespace mxgate
