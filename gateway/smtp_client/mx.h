// Where mail for a domain or host goes (RFC 5321 5.1), through the shared
// Resolver: MX records by preference (random order among equal ones), the
// domain's own A/AAAA when it has no MX (the implicit MX), null MX (RFC 7505)
// as an immediate permanent failure, and DNS errors kept apart: temporary
// ones (timeout, SERVFAIL) from permanent ones (NXDOMAIN).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>

#include "gateway/dns/resolver.h"
#include "gateway/smtp_client/connection.h"
#include "gateway/smtp_client/types.h"

namespace mxgate::smtp_client {

struct ResolveOptions {
  bool ipv4 = true;
  bool ipv6 = true;
  bool prefer_ipv6 = false;  // within one host, which family is tried first
  size_t max_mx_hosts = 10;  // MX hosts resolved to addresses, best first
};

struct ResolvedHost {
  std::string name;  // MX exchange or target host; the literal for IP literals
  uint16_t preference = 0;
  std::vector<asio::ip::address> addresses;  // in the order to try
};

struct Resolution {
  enum class Status { kOk, kTemporary, kPermanent };
  Status status = Status::kTemporary;
  // When not kOk: the reason as a local reply for every recipient, e.g.
  // 4.4.3 (DNS timeout or SERVFAIL), 5.1.2 (domain not found), 5.1.10 (null
  // MX), 5.4.4 (no address for the host or any MX host).
  SmtpReply error;
  // The failure came from DNS (everything but null MX): for the queue's
  // limit on delivery attempts that fail in DNS.
  bool dns_error = false;
  std::vector<ResolvedHost> hosts;  // kOk: in the order to try, each with addresses
};

// MX hosts of domain (a domain name; "[192.0.2.1]" or an IP literal is
// taken as one host), each resolved to its addresses.
asio::awaitable<Resolution> resolveMx(Resolver& resolver, std::string domain,
                                      ResolveOptions options = {});
// The addresses of one host (name or IP literal, with or without brackets).
asio::awaitable<Resolution> resolveHost(Resolver& resolver, std::string host,
                                        ResolveOptions options = {});
// resolveMx or resolveHost, as target.mx says.
asio::awaitable<Resolution> resolveTarget(Resolver& resolver, const SmtpTarget& target,
                                          ResolveOptions options = {});

// The endpoints of r in order, each address once, at most max_addresses.
std::vector<Endpoint> endpointsOf(const Resolution& r, uint16_t port, size_t max_addresses);

}  // namespace mxgate::smtp_client
