#include "gateway/smtp_client/mx.h"

#include <algorithm>
#include <charconv>
#include <random>
#include <tuple>

#include <asio/experimental/awaitable_operators.hpp>

#include "gateway/smtp_client/reply.h"

namespace mxgate::smtp_client {

namespace {

using namespace asio::experimental::awaitable_operators;

bool isTemporary(DnsStatus s) {
  return s == DnsStatus::kTimeout || s == DnsStatus::kServFail || s == DnsStatus::kError;
}

Resolution failed(Resolution::Status status, int code, std::string_view enhanced, std::string text,
                  bool dns_error) {
  Resolution r;
  r.status = status;
  r.error = localReply(code, enhanced, text, Stage::kNone, "", false);
  r.dns_error = dns_error;
  return r;
}

Resolution temporaryDns(const std::string& name, std::string_view type, DnsStatus s) {
  return failed(Resolution::Status::kTemporary, 451, "4.4.3",
                "DNS " + std::string(type) + " lookup for " + name +
                    " failed: " + std::string(dnsStatusName(s)),
                true);
}

std::string stripBrackets(std::string s) {
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  if (s.starts_with("IPv6:") || s.starts_with("ipv6:")) s = s.substr(5);  // RFC 5321 4.1.3
  return s;
}

std::mt19937& rng() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return gen;
}

// A and/or AAAA of name, both asked at once. Returns the addresses; *status
// is kOk if there are any, else the most telling failure (temporary wins).
asio::awaitable<std::vector<asio::ip::address>> addressesOf(Resolver& resolver,
                                                            const std::string& name,
                                                            const ResolveOptions& o,
                                                            DnsStatus* status) {
  DnsAnswer a, aaaa;
  a.status = aaaa.status = DnsStatus::kNoData;
  if (o.ipv4 && o.ipv6) {
    std::tie(a, aaaa) = co_await (resolver.lookup(name, RecordType::kA) &&
                                  resolver.lookup(name, RecordType::kAaaa));
  } else if (o.ipv4) {
    a = co_await resolver.lookup(name, RecordType::kA);
  } else if (o.ipv6) {
    aaaa = co_await resolver.lookup(name, RecordType::kAaaa);
  }
  std::vector<asio::ip::address> v4, v6;
  auto collect = [](const DnsAnswer& ans, std::vector<asio::ip::address>* out) {
    if (!ans.ok()) return;
    for (const std::string& rec : ans.records) {
      std::error_code ec;
      asio::ip::address addr = asio::ip::make_address(rec, ec);
      if (!ec) out->push_back(addr);
    }
  };
  collect(a, &v4);
  collect(aaaa, &v6);
  std::vector<asio::ip::address> out = o.prefer_ipv6 ? v6 : v4;
  const auto& second = o.prefer_ipv6 ? v4 : v6;
  out.insert(out.end(), second.begin(), second.end());
  if (!out.empty()) {
    *status = DnsStatus::kOk;
  } else if (isTemporary(a.status) || isTemporary(aaaa.status)) {
    *status = isTemporary(a.status) ? a.status : aaaa.status;
  } else if (a.status == DnsStatus::kNxDomain || aaaa.status == DnsStatus::kNxDomain) {
    *status = DnsStatus::kNxDomain;
  } else {
    *status = DnsStatus::kNoData;
  }
  co_return out;
}

}  // namespace

asio::awaitable<Resolution> resolveHost(Resolver& resolver, std::string host,
                                        ResolveOptions options) {
  host = stripBrackets(std::move(host));
  std::error_code ec;
  asio::ip::address literal = asio::ip::make_address(host, ec);
  if (!ec) {
    Resolution r;
    r.status = Resolution::Status::kOk;
    r.hosts.push_back({host, 0, {literal}});
    co_return r;
  }
  host = normalizeDnsName(host);
  DnsStatus status = DnsStatus::kError;
  std::vector<asio::ip::address> addrs = co_await addressesOf(resolver, host, options, &status);
  if (status == DnsStatus::kOk) {
    Resolution r;
    r.status = Resolution::Status::kOk;
    r.hosts.push_back({host, 0, std::move(addrs)});
    co_return r;
  }
  if (isTemporary(status)) co_return temporaryDns(host, "address", status);
  co_return failed(Resolution::Status::kPermanent, 550, "5.4.4",
                   status == DnsStatus::kNxDomain ? "host " + host + " not found"
                                                  : "host " + host + " has no address record",
                   true);
}

asio::awaitable<Resolution> resolveMx(Resolver& resolver, std::string domain,
                                      ResolveOptions options) {
  std::string bare = stripBrackets(domain);
  std::error_code ec;
  asio::ip::make_address(bare, ec);
  if (!ec) co_return co_await resolveHost(resolver, bare, options);
  domain = normalizeDnsName(domain);

  DnsAnswer mx = co_await resolver.lookup(domain, RecordType::kMx);
  if (mx.status == DnsStatus::kNxDomain) {
    co_return failed(Resolution::Status::kPermanent, 550, "5.1.2",
                     "domain " + domain + " not found", true);
  }
  if (isTemporary(mx.status)) co_return temporaryDns(domain, "MX", mx.status);
  if (mx.status == DnsStatus::kNoData) {
    // No MX: the domain itself is the implicit MX (RFC 5321 5.1).
    Resolution r = co_await resolveHost(resolver, domain, options);
    if (r.status == Resolution::Status::kPermanent) {
      r.error.text = "domain " + domain + " has no MX or address record";
    }
    co_return r;
  }

  std::vector<ResolvedHost> hosts;
  bool null_mx = false;
  for (const std::string& rec : mx.records) {
    size_t sp = rec.find(' ');
    unsigned pref = 0;
    if (sp == std::string::npos ||
        std::from_chars(rec.data(), rec.data() + sp, pref).ec != std::errc() || pref > 65535) {
      continue;
    }
    std::string host = normalizeDnsName(std::string_view(rec).substr(sp + 1));
    if (host.empty()) {
      null_mx = true;  // "0 ." (RFC 7505)
      continue;
    }
    hosts.push_back({std::move(host), static_cast<uint16_t>(pref), {}});
  }
  if (hosts.empty() && null_mx) {
    co_return failed(Resolution::Status::kPermanent, 556, "5.1.10",
                     "domain " + domain + " does not accept mail (null MX)", false);
  }
  if (hosts.empty()) {
    co_return failed(Resolution::Status::kTemporary, 451, "4.4.3",
                     "no usable MX record for " + domain, true);
  }
  // Best preference first; equal preferences in random order (RFC 5321 5.1).
  std::shuffle(hosts.begin(), hosts.end(), rng());
  std::stable_sort(hosts.begin(), hosts.end(), [](const ResolvedHost& a, const ResolvedHost& b) {
    return a.preference < b.preference;
  });
  if (hosts.size() > options.max_mx_hosts) hosts.resize(options.max_mx_hosts);

  Resolution r;
  DnsStatus worst = DnsStatus::kNoData;
  std::string worst_host;
  for (ResolvedHost& h : hosts) {
    DnsStatus s = DnsStatus::kError;
    asio::ip::address literal = asio::ip::make_address(h.name, ec);
    if (!ec) {
      h.addresses.push_back(literal);  // not allowed (RFC 5321 5.1), but harmless
    } else {
      h.addresses = co_await addressesOf(resolver, h.name, options, &s);
    }
    if (!h.addresses.empty()) {
      r.hosts.push_back(std::move(h));
    } else if (isTemporary(s) && !isTemporary(worst)) {
      worst = s;
      worst_host = h.name;
    }
  }
  if (!r.hosts.empty()) {
    r.status = Resolution::Status::kOk;
    co_return r;
  }
  if (isTemporary(worst)) co_return temporaryDns(worst_host, "address", worst);
  co_return failed(Resolution::Status::kPermanent, 550, "5.4.4",
                   "no MX host of " + domain + " has an address", true);
}

asio::awaitable<Resolution> resolveTarget(Resolver& resolver, const SmtpTarget& target,
                                          ResolveOptions options) {
  if (target.mx) co_return co_await resolveMx(resolver, target.host, options);
  co_return co_await resolveHost(resolver, target.host, options);
}

std::vector<Endpoint> endpointsOf(const Resolution& r, uint16_t port, size_t max_addresses) {
  std::vector<Endpoint> out;
  for (const ResolvedHost& h : r.hosts) {
    for (const asio::ip::address& a : h.addresses) {
      if (out.size() >= max_addresses) return out;
      bool seen =
          std::any_of(out.begin(), out.end(), [&](const Endpoint& e) { return e.address == a; });
      if (!seen) out.push_back({h.name, a, port});
    }
  }
  return out;
}

}  // namespace mxgate::smtp_client
