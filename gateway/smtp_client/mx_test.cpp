// MX resolution through the shared Resolver over static zones, and
// deliver() from a domain to the scripted server.
#include "gateway/smtp_client/mx.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "gateway/dns/static_zone.h"
#include "gateway/smtp_client/client_testing.h"
#include "gateway/smtp_client/delivery.h"

namespace mxgate::smtp_client {
namespace {

using testing::ClientTest;

class MxTest : public ClientTest {
 protected:
  MxTest() {
    auto backend = std::make_unique<StaticZoneBackend>();
    zone = backend.get();
    zone->loadText(R"(
      pref.test        MX    20 backup.pref.test
      pref.test        MX    10 primary.pref.test
      primary.pref.test A    192.0.2.10
      primary.pref.test AAAA 2001:db8::10
      backup.pref.test  A    192.0.2.20
      equal.test       MX    10 a.equal.test
      equal.test       MX    10 b.equal.test
      a.equal.test     A     192.0.2.1
      b.equal.test     A     192.0.2.2
      nomx.test        A     192.0.2.30
      nomx.test        AAAA  2001:db8::30
      nomx.test        TXT   "v=spf1 -all"
      txtonly.test     TXT   "nothing else"
      nullmx.test      MX    0 .
      slow.test        TIMEOUT
      broken.test      SERVFAIL
      dangling.test    MX    10 missing.dangling.test
      halfslow.test    MX    10 slow.test
      halfslow.test    MX    20 backup.pref.test
      deliver.test     MX    10 mx.deliver.test
      mx.deliver.test  A     127.0.0.1
    )");
    resolver = std::make_unique<Resolver>(std::move(backend));
  }
  ~MxTest() override { resolver.reset(); }

  Resolution resolve(const std::string& domain, ResolveOptions o = {}) {
    auto fn = [&]() -> asio::awaitable<Resolution> {
      co_return co_await resolveMx(*resolver, domain, o);
    };
    return run(fn());
  }
  static std::vector<std::string> names(const Resolution& r) {
    std::vector<std::string> out;
    for (const auto& h : r.hosts) out.push_back(h.name);
    return out;
  }

  StaticZoneBackend* zone = nullptr;
  std::unique_ptr<Resolver> resolver;
};

TEST_F(MxTest, ByPreference) {
  Resolution r = resolve("Pref.Test.");
  ASSERT_EQ(r.status, Resolution::Status::kOk);
  EXPECT_EQ(names(r), (std::vector<std::string>{"primary.pref.test", "backup.pref.test"}));
  ASSERT_EQ(r.hosts[0].addresses.size(), 2u);
  EXPECT_EQ(r.hosts[0].addresses[0].to_string(), "192.0.2.10");
  EXPECT_EQ(r.hosts[0].addresses[1].to_string(), "2001:db8::10");
  EXPECT_EQ(r.hosts[0].preference, 10);

  Resolution v6 = resolve("pref.test", ResolveOptions{.prefer_ipv6 = true});
  EXPECT_EQ(v6.hosts[0].addresses[0].to_string(), "2001:db8::10");
  Resolution v4 = resolve("pref.test", ResolveOptions{.ipv6 = false});
  EXPECT_EQ(v4.hosts[0].addresses.size(), 1u);

  std::vector<Endpoint> eps = endpointsOf(r, 2525, 5);
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].label(), "primary.pref.test[192.0.2.10]:2525");
  EXPECT_EQ(eps[2].label(), "backup.pref.test[192.0.2.20]:2525");
  EXPECT_EQ(endpointsOf(r, 25, 2).size(), 2u);
}

TEST_F(MxTest, EqualPreferencesInRandomOrder) {
  std::set<std::string> firsts;
  for (int i = 0; i < 64 && firsts.size() < 2; ++i) {
    Resolution r = resolve("equal.test");
    ASSERT_EQ(r.hosts.size(), 2u);
    firsts.insert(r.hosts[0].name);
  }
  // Both orders turn up (the chance that 64 tries all pick one is 2^-63).
  EXPECT_EQ(firsts.size(), 2u);
}

TEST_F(MxTest, AddressRecordsWhenThereIsNoMx) {
  Resolution r = resolve("nomx.test");
  ASSERT_EQ(r.status, Resolution::Status::kOk);
  ASSERT_EQ(names(r), std::vector<std::string>{"nomx.test"});
  EXPECT_EQ(r.hosts[0].addresses.size(), 2u);

  Resolution none = resolve("txtonly.test");
  EXPECT_EQ(none.status, Resolution::Status::kPermanent);
  EXPECT_EQ(none.error.enhanced, "5.4.4");
  EXPECT_TRUE(none.dns_error);
}

TEST_F(MxTest, NullMxFailsAtOnce) {
  Resolution r = resolve("nullmx.test");
  EXPECT_EQ(r.status, Resolution::Status::kPermanent);
  EXPECT_EQ(r.error.enhanced, "5.1.10");
  EXPECT_EQ(r.error.code, 556);
  EXPECT_FALSE(r.dns_error);
  EXPECT_TRUE(r.hosts.empty());
}

TEST_F(MxTest, NxDomainIsPermanentTimeoutsAreTemporary) {
  Resolution nx = resolve("nowhere.test");
  EXPECT_EQ(nx.status, Resolution::Status::kPermanent);
  EXPECT_EQ(nx.error.enhanced, "5.1.2");
  EXPECT_TRUE(nx.dns_error);

  for (const char* d : {"slow.test", "broken.test"}) {
    Resolution t = resolve(d);
    EXPECT_EQ(t.status, Resolution::Status::kTemporary) << d;
    EXPECT_EQ(t.error.enhanced, "4.4.3") << d;
    EXPECT_EQ(t.error.outcome(), Outcome::kTemporary);
    EXPECT_TRUE(t.dns_error);
  }
}

TEST_F(MxTest, MxHostsWithoutAddresses) {
  Resolution dangling = resolve("dangling.test");
  EXPECT_EQ(dangling.status, Resolution::Status::kPermanent);
  EXPECT_EQ(dangling.error.enhanced, "5.4.4");
  // One MX host times out, the other resolves: go on with what there is.
  Resolution half = resolve("halfslow.test");
  ASSERT_EQ(half.status, Resolution::Status::kOk);
  EXPECT_EQ(names(half), std::vector<std::string>{"backup.pref.test"});
  zone->addRecord("onlyslow.test", "MX", "10 slow.test");
  Resolution slow = resolve("onlyslow.test");
  EXPECT_EQ(slow.status, Resolution::Status::kTemporary);
}

TEST_F(MxTest, AddressLiteralsNeedNoDns) {
  const uint64_t before = zone->queries();
  for (const char* lit : {"[192.0.2.7]", "192.0.2.7", "[IPv6:2001:db8::7]"}) {
    Resolution r = resolve(lit);
    ASSERT_EQ(r.status, Resolution::Status::kOk) << lit;
    ASSERT_EQ(r.hosts.size(), 1u);
    EXPECT_EQ(r.hosts[0].addresses.size(), 1u);
  }
  EXPECT_EQ(zone->queries(), before);
}

TEST_F(MxTest, TargetsWithoutMx) {
  auto fn = [&](SmtpTarget t) -> asio::awaitable<Resolution> {
    co_return co_await resolveTarget(*resolver, t);
  };
  Resolution host = run(fn(SmtpTarget{"primary.pref.test", 25, false}));
  ASSERT_EQ(host.status, Resolution::Status::kOk);
  EXPECT_EQ(names(host), std::vector<std::string>{"primary.pref.test"});
  // pref.test has MX records but no address: as a plain host it is nowhere.
  Resolution direct = run(fn(SmtpTarget{"pref.test", 25, false}));
  EXPECT_EQ(direct.status, Resolution::Status::kPermanent);
  Resolution missing = run(fn(SmtpTarget{"nowhere.test", 25, false}));
  EXPECT_EQ(missing.error.enhanced, "5.4.4");
  EXPECT_TRUE(missing.dns_error);
}

TEST_F(MxTest, DeliverToADomain) {
  DeliveryOptions o;
  o.client = opts;
  OutboundMessage m = message({"a@deliver.test"});
  auto fn = [&](SmtpTarget t) -> asio::awaitable<DeliveryReport> {
    co_return co_await deliver(*resolver, nullptr, t, m, o);
  };
  DeliveryReport rep = run(fn(SmtpTarget{"deliver.test", server.port(), true}));
  ASSERT_TRUE(rep.allAccepted()) << rep.rcpts[0].describe();
  EXPECT_EQ(rep.rcpts[0].host, "mx.deliver.test[127.0.0.1]:" + std::to_string(server.port()));
  EXPECT_FALSE(rep.dns_error);

  rep = run(fn(SmtpTarget{"nullmx.test", server.port(), true}));
  EXPECT_EQ(rep.rcpts[0].enhanced, "5.1.10");
  EXPECT_FALSE(rep.dns_error);
  rep = run(fn(SmtpTarget{"slow.test", server.port(), true}));
  EXPECT_EQ(rep.rcpts[0].outcome(), Outcome::kTemporary);
  EXPECT_TRUE(rep.dns_error);
  EXPECT_EQ(server.connections(), 1u);
}

}  // namespace
}  // namespace mxgate::smtp_client
