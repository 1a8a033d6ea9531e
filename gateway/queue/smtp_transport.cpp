#include "gateway/queue/smtp_transport.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <asio/ssl/context.hpp>
#include <asio/this_coro.hpp>

#include "gateway/config/config.h"
#include "gateway/dns/resolver.h"
#include "gateway/smtp_client/connection.h"
#include "gateway/smtp_client/delivery.h"
#include "gateway/smtp_client/mx.h"
#include "gateway/util/strings.h"

namespace mxgate {

namespace sc = smtp_client;

namespace {

// At most this many addresses are tried per delivery (Postfix's
// smtp_mx_address_limit).
constexpr size_t kMaxAddresses = 5;

bool hasEightBit(std::string_view body) {
  return std::any_of(body.begin(), body.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

sc::TlsPolicy tlsPolicy(RouteConfig::Tls t) {
  switch (t) {
    case RouteConfig::Tls::kNone:
      return sc::TlsPolicy::kNone;
    case RouteConfig::Tls::kMay:
      return sc::TlsPolicy::kMay;
    case RouteConfig::Tls::kEncrypt:
      return sc::TlsPolicy::kEncrypt;
    case RouteConfig::Tls::kVerify:
      return sc::TlsPolicy::kVerify;
  }
  return sc::TlsPolicy::kMay;
}

// A route's hosts in the order to try: as listed, or a weighted shuffle
// (each pick proportional to its weight among those left).
std::vector<RouteConfig::Host> hostOrder(const RouteConfig& r) {
  std::vector<RouteConfig::Host> hosts = r.hosts;
  if (!r.weighted || hosts.size() < 2) return hosts;
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::vector<RouteConfig::Host> out;
  while (!hosts.empty()) {
    uint64_t total = 0;
    for (const auto& h : hosts) total += h.weight;
    uint64_t pick = std::uniform_int_distribution<uint64_t>(0, total - 1)(rng);
    size_t i = 0;
    while (pick >= hosts[i].weight) pick -= hosts[i++].weight;
    out.push_back(hosts[i]);
    hosts.erase(hosts.begin() + static_cast<std::ptrdiff_t>(i));
  }
  return out;
}

}  // namespace

DeliveryResult toDeliveryResult(const sc::SmtpReply& r, bool dns_error) {
  DeliveryResult out;
  switch (r.outcome()) {
    case sc::Outcome::kAccepted:
      out.kind = DeliveryResult::Kind::kDelivered;
      break;
    case sc::Outcome::kTemporary:
      out.kind = DeliveryResult::Kind::kDeferred;
      break;
    case sc::Outcome::kPermanent:
      out.kind = DeliveryResult::Kind::kFailed;
      break;
  }
  std::string text = r.describe();
  out.reply = r.enhanced.empty() || text.starts_with(r.enhanced) ? text : r.enhanced + " " + text;
  // A domain that does not resolve (NXDOMAIN included) is retried until
  // [delivery] dns_error_limit: a DNS hiccup must not bounce mail at once.
  if (dns_error && out.kind == DeliveryResult::Kind::kFailed)
    out.kind = DeliveryResult::Kind::kDeferred;
  out.remote = r.host;
  out.dns_error = dns_error;
  out.destination_down = r.host_level && out.kind == DeliveryResult::Kind::kDeferred;
  return out;
}

SmtpTransport::SmtpTransport(Options options) : options_(std::move(options)) {}

SmtpTransport::~SmtpTransport() {
  shutdown();
}

void SmtpTransport::shutdown() {
  cache_.reset();
}

sc::ClientOptions SmtpTransport::clientOptions(const RouteConfig* route) {
  sc::ClientOptions o;
  o.helo_name = options_.hostname;
  o.timeouts = options_.timeouts;
  std::string ca;
  if (route != nullptr) {
    o.tls = tlsPolicy(route->tls);
    o.ca_file = route->tls_ca_file;
    o.auth_user = route->auth_user;
    o.auth_password = route->auth_password;
    ca = route->tls_ca_file;
  }
  if (o.tls != sc::TlsPolicy::kNone) {
    auto& ctx = tls_[ca];
    if (!ctx) ctx = sc::makeClientTlsContext(ca);
    o.tls_context = ctx;
  }
  return o;
}

asio::awaitable<std::vector<DeliveryResult>> SmtpTransport::deliver(const TransportJob& job) {
  auto ex = co_await asio::this_coro::executor;
  if (!cache_) cache_ = std::make_unique<sc::ConnectionCache>(ex);
  const SpoolMeta& meta = job.message->meta;
  const RouteConfig* route = job.route;

  sc::OutboundMessage msg;
  msg.mail_from = meta.envelope.mail_from;
  for (const Recipient* r : job.rcpts) msg.rcpts.push_back(*r);
  msg.ret = meta.envelope.ret;
  msg.envid = meta.envelope.envid;
  msg.smtputf8 = meta.envelope.smtputf8;
  // BODY=8BITMIME only when the bytes need it, whatever the client declared.
  msg.eight_bit = hasEightBit(job.message->body);
  msg.parts = {job.message->body};
  msg.size = job.message->body.size();
  sc::ClientOptions client = clientOptions(route);

  auto fail = [&](sc::SmtpReply reply, bool dns_error) {
    DeliveryResult r = toDeliveryResult(reply, dns_error);
    return std::vector<DeliveryResult>(job.rcpts.size(), r);
  };

  std::vector<sc::Endpoint> endpoints;
  bool via_hosts = route != nullptr && (route->type == RouteConfig::Type::kForward ||
                                        route->type == RouteConfig::Type::kSmarthost);
  if (via_hosts) {
    sc::Resolution last;
    for (const RouteConfig::Host& h : hostOrder(*route)) {
      sc::Resolution res = co_await sc::resolveHost(*options_.resolver, h.host);
      if (res.status != sc::Resolution::Status::kOk) {
        last = std::move(res);
        continue;
      }
      for (auto& e : sc::endpointsOf(res, h.port, kMaxAddresses)) endpoints.push_back(e);
    }
    if (endpoints.empty()) {
      // A route's own hosts not resolving is the admin's problem, never the
      // sender's: always temporary.
      sc::SmtpReply r = last.error;
      if (r.code >= 500) {
        r.code = 451;
        r.enhanced = "4.4.3";
      }
      r.text = fmt::format("route {}: no host address: {}", route->name, r.text);
      r.host_level = true;
      co_return fail(r, false);
    }
  } else {
    sc::Resolution res = co_await sc::resolveMx(*options_.resolver, job.domain);
    if (res.status != sc::Resolution::Status::kOk) co_return fail(res.error, res.dns_error);
    // RFC 5321 5.1: never deliver to ourselves or to hosts we are preferred
    // over; as a backup MX, only hosts preferred over us are candidates.
    std::string me = toLower(options_.hostname);
    auto self = std::find_if(res.hosts.begin(), res.hosts.end(),
                             [&](const sc::ResolvedHost& h) { return toLower(h.name) == me; });
    if (self != res.hosts.end()) {
      uint16_t pref = self->preference;
      std::erase_if(res.hosts, [&](const sc::ResolvedHost& h) { return h.preference >= pref; });
      if (res.hosts.empty()) {
        sc::SmtpReply r;
        r.local = true;
        bool backup = route != nullptr && route->type == RouteConfig::Type::kBackupMx;
        r.code = backup ? 451 : 554;
        r.enhanced = backup ? "4.4.4" : "5.4.6";
        r.text = backup ? "no MX host of " + job.domain + " is preferred over this backup MX"
                        : "mail for " + job.domain + " loops back to myself";
        co_return fail(r, false);
      }
    }
    endpoints = sc::endpointsOf(res, options_.mx_port, kMaxAddresses);
  }
  sc::DeliveryReport report = co_await sc::deliverToEndpoints(endpoints, cache_.get(), msg, client);
  std::vector<DeliveryResult> out;
  out.reserve(report.rcpts.size());
  for (const sc::SmtpReply& r : report.rcpts) out.push_back(toDeliveryResult(r, false));
  co_return out;
}

}  // namespace mxgate
