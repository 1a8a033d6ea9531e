// A set of IPv4/IPv6 networks in CIDR notation with fast membership tests.
//
// IPv4 addresses are stored as IPv4-mapped IPv6 (::ffff:a.b.c.d/96+n), so one
// table serves both families and a v4-mapped client address matches a v4 rule.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <asio/ip/address.hpp>

namespace mxgate {

using Ip6Bytes = std::array<uint8_t, 16>;

// An IPv4-mapped IPv6 address (a v4 client on a dual-stack socket) as the
// IPv4 address it is; any other address unchanged. Logs, stores and lists
// all key on this form.
asio::ip::address canonicalAddress(const asio::ip::address& addr);

// The 16-byte form of an address (IPv4 mapped into ::ffff:0:0/96).
Ip6Bytes toIp6Bytes(const asio::ip::address& addr);

struct Network {
  Ip6Bytes base{};  // host bits cleared
  int prefix = 0;   // 0..128 in the IPv6 form
  // "192.0.2.0/24", "2001:db8::/32", "192.0.2.7" (a /32), "::1" (a /128).
  static std::optional<Network> parse(std::string_view text);
  std::string str() const;
};

class IpSet {
 public:
  void add(const Network& net);
  bool contains(const asio::ip::address& addr) const;
  // The most specific network containing addr, if any.
  std::optional<Network> match(const asio::ip::address& addr) const;
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

 private:
  struct Hash {
    size_t operator()(const Ip6Bytes& b) const noexcept;
  };
  // One hash set per prefix length present; a lookup masks the address once
  // per distinct length, longest first. Lists have few distinct lengths.
  std::array<std::unordered_set<Ip6Bytes, Hash>, 129> by_prefix_;
  std::vector<int> lengths_;  // distinct prefix lengths present, descending
  size_t count_ = 0;
};

Ip6Bytes maskTo(const Ip6Bytes& addr, int prefix);

}  // namespace mxgate
