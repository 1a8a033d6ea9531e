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
  IpSet trusted_networks;
  std::vector<DomainConfig> domains;
  std::unordered_map<std::string, size_t> domain_index;
  PolicyConfig policy;

  const DomainConfig* findDomain(std::string_view lowercase_domain) const;
  // Resolves a path from the file against dir.
  std::string resolvePath(const std::string& path) const;
};

}  // namespace mxgate
