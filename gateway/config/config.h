// The daemon's configuration: one TOML file, validated completely at load.
// Relative paths in it resolve against the directory of the file itself, so
// the result never depends on where the daemon was started.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <asio/ip/tcp.hpp>

#include "gateway/queue/bounce.h"
#include "gateway/smtp/data_reader.h"
#include "gateway/util/ip_set.h"

namespace mxgate {

struct DomainConfig {
  std::string name;  // lowercased
  bool accept_all = false;
  std::unordered_set<std::string> users;  // lowercased local parts
};

struct SmtpConfig {
  std::string banner;  // text after "220 <hostname> "
  uint64_t max_message_size = 30ull << 20;
  int max_recipients = 200;
  int max_bad_recipients = 20;
  int max_hops = 20;
  int max_line_length = 1000;  // octets including CRLF (RFC 5321 4.5.3.1.6)
  int max_bad_commands = 8;
  int max_connections = 1000;
  int max_connections_per_ip = 50;
  std::chrono::milliseconds session_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds command_timeout{std::chrono::seconds(120)};
  smtp::BareNewline bare_newline = smtp::BareNewline::kReject;
  bool vrfy = false;  // false: 252, as RFC 5321 7.3 allows
  bool expn = false;  // false: 502
};

struct PolicyConfig {
  double add_header = 5;
  double tag_subject = 8;
  std::optional<double> quarantine;
  std::optional<double> discard;
  double reject = 15;
  std::string subject_tag = "[SPAM]";
  std::string status_header = "X-Mxgate-Status";
  std::string reject_text = "Message rejected as spam";
};

// One [[route]]: where mail for some recipient domains goes. Routes are
// tried in file order and the first match wins; after them come two
// implicit ones: [[domains]] -> local, everything else -> mx.
struct RouteConfig {
  enum class Type { kLocal, kForward, kSmarthost, kMx, kBackupMx };
  enum class Tls { kNone, kMay, kEncrypt, kVerify };
  struct Host {
    std::string host;  // name or IP literal
    uint16_t port = 25;
    uint32_t weight = 1;
  };
  std::string name;  // for logs and `mxgatectl queue`; default "route<N>"
  std::string file;  // where it was declared, for messages
  uint32_t line = 0;
  // "example.com" (exact), ".example.com" (any subdomain), "*" (any).
  std::vector<std::string> domains;
  Type type = Type::kMx;
  std::vector<Host> hosts;  // forward / smarthost: tried in order, or by weight
  bool weighted = false;
  Tls tls = Tls::kMay;
  std::string tls_ca_file;  // kVerify: CA bundle; empty = system CAs
  std::string auth_user;
  std::string auth_password;  // read from auth_password_file
  int min_priority = 1, max_priority = 10;
  std::vector<std::chrono::seconds> retry_schedule;  // empty: [delivery] retry_schedule
  std::optional<std::chrono::seconds> max_lifetime;  // unset: [delivery] max_lifetime
  size_t concurrency = 0;                            // 0: [delivery] destination_concurrency

  bool matches(std::string_view lowercase_domain, int priority) const;
};

const char* routeTypeName(RouteConfig::Type t);

// Priorities 1 (lowest) to 10 (highest), delivered highest first.
struct PriorityConfig {
  int normal = 5;
  std::unordered_map<std::string, int> sender_domains;  // MAIL FROM domain -> priority
  uint64_t large_message = 0;                           // bytes; 0: no size rule
  int large_priority = 3;
  int retry_priority = 4;  // a deferred message drops to this (if it was higher)
};

struct DeliveryConfig {
  // Accept and keep mail in the spool without delivering it (maintenance,
  // or a backup MX holding for its primary). Takes effect at start.
  bool hold = false;
  // Local mailboxes: <maildir_root>/<domain>/<local part>/Maildir.
  std::string maildir_root;
  uint64_t quota = 0;  // bytes per mailbox; 0: none
  // Waits between attempts for a deferred recipient; the last repeats.
  std::vector<std::chrono::seconds> retry_schedule{
      std::chrono::minutes(15), std::chrono::minutes(30), std::chrono::minutes(60),
      std::chrono::minutes(90), std::chrono::hours(4)};
  std::chrono::seconds max_lifetime{std::chrono::hours(24 * 5)};
  // Recipients whose destination fails to resolve this many times fail
  // (mistyped domains bounce fast instead of waiting out max_lifetime).
  uint32_t dns_error_limit = 2;
  uint16_t mx_port = 25;                // port of MX hosts (RFC 5321: 25; other values for tests)
  size_t max_concurrency = 100;         // deliveries in flight, overall
  size_t destination_concurrency = 20;  // per destination (route or MX domain)
  PriorityConfig priority;
  std::vector<RouteConfig> routes;  // [[route]], in file order
  // When a bounce may be sent at all (backscatter guard; gateway/queue/bounce.h).
  BounceGuard bounce_guard = BounceGuard::kSpfPass;
  // RET=FULL returns the original whole up to this size, else its headers.
  uint64_t bounce_max_original = kDefaultBounceMaxOriginal;
};

struct DnsConfig {
  // "IP" or "IP:port" nameservers; empty: the system's (/etc/resolv.conf).
  std::vector<std::string> servers;
  // A zone file answered locally instead of asking nameservers (tests,
  // offline labs); see gateway/dns/static_zone.h for the format.
  std::string static_zones;
  std::chrono::milliseconds timeout{5000};  // per lookup, whatever the retries
  uint64_t cache_size = 100000;             // entries
  std::chrono::seconds negative_ttl{300};
};

struct TlsConfig {
  bool enabled = true;
  std::string cert_file;
  std::string key_file;
};

// The outbound role: mail submission (RFC 6409) by authenticated users.
struct SubmissionConfig {
  // Listeners where MAIL needs AUTH first (port 587). Empty: off.
  std::vector<asio::ip::tcp::endpoint> listen;
  // NAME:HASH lines; see gateway/auth/users_file.h.
  std::string users_file;
  bool require_tls = true;    // AUTH offered and accepted only under TLS
  int max_auth_failures = 3;  // per session; then 421 and disconnect
  bool auth_on_mx = false;    // also offer AUTH on server.listen
  bool authEnabled() const { return !listen.empty() || auth_on_mx; }
};

struct Config {
  std::string file;  // the configuration file, as given
  std::string dir;   // its directory: base for relative paths

  // [server]
  std::string hostname;
  // RFC 8601 authserv-id of our Authentication-Results (default: hostname).
  std::string authserv_id;
  std::vector<asio::ip::tcp::endpoint> listen;
  int threads = 0;  // 0: one per core
  std::string user;
  std::string state_dir;
  std::string spool_dir;
  uint64_t store_map_size = 1ull << 30;
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
  uint64_t spool_segment_size = 64ull << 20;

  SmtpConfig smtp;
  TlsConfig tls;
  DeliveryConfig delivery;
  DnsConfig dns;
  SubmissionConfig submission;
  IpSet trusted_networks;
  std::vector<DomainConfig> domains;
  std::unordered_map<std::string, size_t> domain_index;
  PolicyConfig policy;

  const DomainConfig* findDomain(std::string_view lowercase_domain) const;
  // Resolves a path from the file against dir.
  std::string resolvePath(const std::string& path) const;
};

}  // namespace mxgate
