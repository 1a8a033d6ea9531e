#include "gateway/util/ip_set.h"

#include <gtest/gtest.h>

namespace mxgate {
namespace {

asio::ip::address ip(const char* s) {
  return asio::ip::make_address(s);
}

TEST(IpSet, MatchesV4AndV6Prefixes) {
  IpSet set;
  set.add(*Network::parse("192.0.2.0/24"));
  set.add(*Network::parse("2001:db8::/32"));
  set.add(*Network::parse("198.51.100.7"));
  EXPECT_TRUE(set.contains(ip("192.0.2.255")));
  EXPECT_FALSE(set.contains(ip("192.0.3.1")));
  EXPECT_TRUE(set.contains(ip("2001:db8:ffff::1")));
  EXPECT_FALSE(set.contains(ip("2001:db9::1")));
  EXPECT_TRUE(set.contains(ip("198.51.100.7")));
  EXPECT_FALSE(set.contains(ip("198.51.100.8")));
  // A v4-mapped v6 client address matches the v4 rule.
  EXPECT_TRUE(set.contains(ip("::ffff:192.0.2.9")));
  EXPECT_EQ(set.size(), 3u);
}

TEST(IpSet, MostSpecificMatchWins) {
  IpSet set;
  set.add(*Network::parse("10.0.0.0/8"));
  set.add(*Network::parse("10.1.0.0/16"));
  auto m = set.match(ip("10.1.2.3"));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->str(), "10.1.0.0/16");
}

TEST(IpSet, ZeroPrefixes) {
  IpSet v4all;
  v4all.add(*Network::parse("0.0.0.0/0"));
  EXPECT_TRUE(v4all.contains(ip("203.0.113.1")));
  EXPECT_FALSE(v4all.contains(ip("2001:db8::1")));
  IpSet all;
  all.add(*Network::parse("::/0"));
  EXPECT_TRUE(all.contains(ip("2001:db8::1")));
}

TEST(Network, RejectsMalformed) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4/33", "1.2.3.4/", "::1/129", "host.example",
                          "1.2.3.4/x", "1.2.3.4/-1"}) {
    EXPECT_FALSE(Network::parse(bad)) << bad;
  }
  EXPECT_EQ(Network::parse("192.0.2.77/24")->str(), "192.0.2.0/24");
  EXPECT_EQ(Network::parse("::1")->str(), "::1/128");
}

}  // namespace
}  // namespace mxgate

namespace mxgate {
namespace {

TEST(CanonicalAddress, UnmapsV4MappedOnly) {
  EXPECT_EQ(canonicalAddress(asio::ip::make_address("::ffff:192.0.2.9")).to_string(), "192.0.2.9");
  EXPECT_TRUE(canonicalAddress(asio::ip::make_address("::ffff:192.0.2.9")).is_v4());
  EXPECT_EQ(canonicalAddress(asio::ip::make_address("2001:db8::1")).to_string(), "2001:db8::1");
  EXPECT_EQ(canonicalAddress(asio::ip::make_address("192.0.2.9")).to_string(), "192.0.2.9");
}

}  // namespace
}  // namespace mxgate
