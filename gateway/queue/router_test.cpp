#include "gateway/queue/router.h"

#include <gtest/gtest.h>

namespace mxgate {
namespace {

class NullTransport : public Transport {
 public:
  asio::awaitable<std::vector<DeliveryResult>> deliver(const TransportJob&) override {
    co_return std::vector<DeliveryResult>{};
  }
};

RouteConfig route(std::string name, std::vector<std::string> domains, RouteConfig::Type type,
                  int min_prio = 1, int max_prio = 10) {
  RouteConfig r;
  r.name = std::move(name);
  r.domains = std::move(domains);
  r.type = type;
  r.min_priority = min_prio;
  r.max_priority = max_prio;
  return r;
}

TEST(Router, FirstMatchingRouteThenLocalDomainsThenMx) {
  auto cfg = std::make_shared<Config>();
  cfg->domains.push_back(DomainConfig{"local.test", true, {}});
  cfg->domain_index["local.test"] = 0;
  cfg->delivery.routes = {
      route("inside", {"corp.test", ".corp.test"}, RouteConfig::Type::kForward),
      route("bulk", {"*"}, RouteConfig::Type::kSmarthost, 1, 3),
      route("partner", {"partner.test"}, RouteConfig::Type::kBackupMx),
      route("keep", {"local.test"}, RouteConfig::Type::kLocal),
  };
  NullTransport hosts, mx;
  auto router = makeRouter(cfg, Transports{&hosts, &mx});

  Destination d = router("sub.corp.test", 5);
  EXPECT_EQ(d.key, "route:inside");
  EXPECT_EQ(d.transport, &hosts);
  EXPECT_EQ(d.route, &cfg->delivery.routes[0]);
  EXPECT_EQ(router("outside.test", 2).key, "route:bulk");  // low priority: the bulk relay
  d = router("outside.test", 5);
  EXPECT_EQ(d.key, "mx:outside.test");
  EXPECT_EQ(d.transport, &mx);
  EXPECT_EQ(d.route, nullptr);
  EXPECT_EQ(router("partner.test", 5).route, &cfg->delivery.routes[2]);
  EXPECT_EQ(router("local.test", 5).key, "local");
  EXPECT_EQ(router("", 5).key, "local");  // bare postmaster
}

TEST(Router, MissingTransportDefersWithAReason) {
  auto cfg = std::make_shared<Config>();
  cfg->delivery.routes = {route("inside", {"corp.test"}, RouteConfig::Type::kForward)};
  auto router = makeRouter(cfg, Transports{});
  EXPECT_EQ(router("corp.test", 5).unavailable, "4.4.0 route inside is not available");
  EXPECT_EQ(router("else.test", 5).unavailable, "4.4.0 MX delivery is not available");
}

}  // namespace
}  // namespace mxgate
