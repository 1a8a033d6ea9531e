#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "gateway/auth/users_file.h"
#include "gateway/config/runtime.h"
#include "gateway/config/table_reader.h"
#include "gateway/smtp/command.h"

namespace mxgate {
namespace {

std::string defaultHostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

asio::ip::tcp::endpoint parseListen(TableReader& r, const std::string& text) {
  // "127.0.0.1:2525", "[::1]:2525", ":2525" (all addresses).
  size_t colon = text.rfind(':');
  if (colon == std::string::npos)
    r.fail("listen", "\"" + text + "\" needs a port, e.g. 127.0.0.1:2525");
  std::string host = text.substr(0, colon);
  std::string port_text = text.substr(colon + 1);
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(port_text, &used);
    if (used != port_text.size()) port = -1;
  } catch (...) {
    port = -1;
  }
  if (port <= 0 || port > 65535) r.fail("listen", "\"" + text + "\": bad port");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "::";
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) r.fail("listen", "\"" + text + "\": \"" + host + "\" is not an IP address");
  return {addr, static_cast<uint16_t>(port)};
}

void readDomains(TableReader& root, Config& c) {
  for (TableReader& d : root.getTableArray("domains")) {
    DomainConfig dom;
    dom.name = toLower(d.getString("name", ""));
    if (dom.name.empty()) d.fail("name", "every [[domains]] entry needs a name");
    if (c.domain_index.count(dom.name)) d.fail("name", "domain " + dom.name + " is listed twice");
    auto add_user = [&](const std::string& user, const std::string& file, uint32_t line) {
      std::string u = toLower(user);
      // "alice" or "alice@domain"; the domain part must be this domain.
      if (auto at = u.rfind('@'); at != std::string::npos) {
        if (u.substr(at + 1) != dom.name)
          throw ConfigError(file, line, "recipient " + user + " is not in domain " + dom.name);
        u = u.substr(0, at);
      }
      if (u.empty()) throw ConfigError(file, line, "empty recipient");
      dom.users.insert(u);
    };
    const toml::value& rcpts = d.raw("recipients");
    if (rcpts.is_string()) {
      if (rcpts.as_string().str != "accept-all")
        d.fail("recipients", "must be \"accept-all\" or a list of local parts");
      dom.accept_all = true;
    } else if (rcpts.is_array()) {
      auto [file, line] = d.where("recipients");
      for (const std::string& u : d.getStringList("recipients", {})) add_user(u, file, line);
    } else if (!rcpts.is_uninitialized()) {
      d.fail("recipients", "must be \"accept-all\" or a list of local parts");
    }
    std::string rfile = d.getString("recipients_file", "");
    if (!rfile.empty()) {
      std::string path = c.resolvePath(rfile);
      std::ifstream in(path);
      if (!in) d.fail("recipients_file", "cannot read " + path);
      std::string line;
      uint32_t n = 0;
      while (std::getline(in, line)) {
        ++n;
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
          line.pop_back();
        size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos) continue;
        add_user(line.substr(start), path, n);
      }
    }
    if (!dom.accept_all && dom.users.empty() && rfile.empty())
      d.fail("recipients", "domain " + dom.name +
                               " has no recipients: set recipients = \"accept-all\" or list them");
    d.finish();
    c.domain_index[dom.name] = c.domains.size();
    c.domains.push_back(std::move(dom));
  }
}

}  // namespace

const DomainConfig* Config::findDomain(std::string_view d) const {
  auto it = domain_index.find(std::string(d));
  return it == domain_index.end() ? nullptr : &domains[it->second];
}

std::string Config::resolvePath(const std::string& path) const {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(dir) / path).lexically_normal().string();
}

// Reads everything but [filters] and [symbols], which need the registry.
void readPriorities(TableReader& delivery, PriorityConfig& p);
void readRoutes(TableReader& root, Config& c);

static Config readConfig(const std::string& file, TableReader& root) {
  Config c;
  c.file = file;
  c.dir = std::filesystem::absolute(std::filesystem::path(file)).parent_path().string();

  TableReader server = root.getTable("server");
  c.hostname = server.getString("hostname", defaultHostname());
  c.authserv_id = server.getString("authserv_id", c.hostname);
  if (c.authserv_id.empty() || c.authserv_id.find_first_of(" \t;()\"\\") != std::string::npos)
    server.fail("authserv_id", "must be one token without spaces, ';', quotes or parentheses");
  for (const std::string& l : server.getStringList("listen", {"127.0.0.1:2525"}))
    c.listen.push_back(parseListen(server, l));
  if (c.listen.empty()) server.fail("listen", "needs at least one address");
  c.threads = static_cast<int>(server.getInt("threads", 0, 0, 256));
  c.user = server.getString("user", "mxgate");
  c.state_dir = c.resolvePath(server.getString("state_dir", "/var/lib/mxgate"));
  c.spool_dir = c.resolvePath(server.getString("spool_dir", "/var/spool/mxgate"));
  c.store_map_size = server.getSize("store_map_size", c.store_map_size);
  if (c.store_map_size < (1u << 20)) server.fail("store_map_size", "must be at least 1M");
  c.spool_segment_size = server.getSize("spool_segment_size", c.spool_segment_size);
  if (c.spool_segment_size < (1u << 20)) server.fail("spool_segment_size", "must be at least 1M");
  c.log_level = server.getString("log_level", "info");
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
      c.log_level != "error")
    server.fail("log_level", "must be debug, info, warn or error");
  c.log_file = server.getString("log_file", "");
  if (!c.log_file.empty()) c.log_file = c.resolvePath(c.log_file);
  server.finish();

  TableReader smtp = root.getTable("smtp");
  SmtpConfig& s = c.smtp;
  s.banner = smtp.getString("banner", "ESMTP mxgate");
  s.max_message_size = smtp.getSize("max_message_size", s.max_message_size);
  if (s.max_message_size < 1024) smtp.fail("max_message_size", "must be at least 1K");
  s.max_recipients = static_cast<int>(smtp.getInt("max_recipients", 200, 1, 100000));
  s.max_bad_recipients = static_cast<int>(smtp.getInt("max_bad_recipients", 20, 1, 100000));
  s.max_hops = static_cast<int>(smtp.getInt("max_hops", 20, 1, 1000));
  s.max_line_length = static_cast<int>(smtp.getInt("max_line_length", 1000, 512, 65536));
  s.max_bad_commands = static_cast<int>(smtp.getInt("max_bad_commands", 8, 1, 1000));
  s.max_connections = static_cast<int>(smtp.getInt("max_connections", 1000, 1, 1000000));
  s.max_connections_per_ip =
      static_cast<int>(smtp.getInt("max_connections_per_ip", 50, 1, 1000000));
  s.session_timeout = smtp.getDuration("session_timeout", s.session_timeout);
  s.command_timeout = smtp.getDuration("command_timeout", s.command_timeout);
  if (s.command_timeout.count() <= 0) smtp.fail("command_timeout", "must be positive");
  if (s.session_timeout < s.command_timeout)
    smtp.fail("session_timeout", "must not be shorter than smtp.command_timeout");
  std::string bare = smtp.getString("bare_newline", "reject");
  if (bare == "reject") {
    s.bare_newline = smtp::BareNewline::kReject;
  } else if (bare == "normalize") {
    s.bare_newline = smtp::BareNewline::kNormalize;
  } else {
    smtp.fail("bare_newline", "must be \"reject\" or \"normalize\", not \"" + bare + "\"");
  }
  s.vrfy = smtp.getBool("vrfy", false);
  s.expn = smtp.getBool("expn", false);
  smtp.finish();

  TableReader tls = root.getTable("tls");
  c.tls.enabled = tls.getBool("enabled", true);
  c.tls.cert_file = c.resolvePath(tls.getString("cert_file", "/etc/mxgate/tls/cert.pem"));
  c.tls.key_file = c.resolvePath(tls.getString("key_file", "/etc/mxgate/tls/key.pem"));
  tls.finish();

  TableReader delivery = root.getTable("delivery");
  DeliveryConfig& dc = c.delivery;
  dc.hold = delivery.getBool("hold", false);
  dc.maildir_root = c.resolvePath(delivery.getString("maildir_root", "/var/mail/mxgate"));
  dc.quota = delivery.getSize("quota", 0);
  if (delivery.has("retry_schedule")) {
    auto [file, line] = delivery.where("retry_schedule");
    dc.retry_schedule.clear();
    for (const std::string& text : delivery.getStringList("retry_schedule", {})) {
      auto d = parseDuration(text);
      if (!d || d->count() < 1000)
        throw ConfigError(
            file, line,
            "delivery.retry_schedule: \"" + text + "\" is not a duration of at least 1s");
      dc.retry_schedule.push_back(std::chrono::duration_cast<std::chrono::seconds>(*d));
    }
    if (dc.retry_schedule.empty()) delivery.fail("retry_schedule", "needs at least one interval");
  }
  dc.max_lifetime = std::chrono::duration_cast<std::chrono::seconds>(
      delivery.getDuration("max_lifetime", dc.max_lifetime));
  if (dc.max_lifetime.count() < 60) delivery.fail("max_lifetime", "must be at least 1m");
  dc.mx_port = static_cast<uint16_t>(delivery.getInt("mx_port", 25, 1, 65535));
  dc.dns_error_limit =
      static_cast<uint32_t>(delivery.getInt("dns_error_limit", dc.dns_error_limit, 1, 1000));
  dc.max_concurrency = static_cast<size_t>(delivery.getInt("max_concurrency", 100, 1, 10000));
  dc.destination_concurrency =
      static_cast<size_t>(delivery.getInt("destination_concurrency", 20, 1, 10000));
  readPriorities(delivery, dc.priority);
  std::string guard = delivery.getString("bounce_guard", bounceGuardName(dc.bounce_guard));
  if (!parseBounceGuard(guard, &dc.bounce_guard))
    delivery.fail("bounce_guard",
                  "must be \"spf_pass\", \"always\" or \"never\", not \"" + guard + "\"");
  dc.bounce_max_original = delivery.getSize("bounce_max_original", dc.bounce_max_original);
  delivery.finish();
  readRoutes(root, c);

  TableReader dns = root.getTable("dns");
  auto [dfile, dline] = dns.where("servers");
  for (const std::string& srv : dns.getStringList("servers", {})) {
    std::string host = srv;
    if (host.size() > 2 && host.front() == '[')
      host = host.substr(1, host.find(']') - 1);
    else if (std::count(host.begin(), host.end(), ':') == 1)
      host = host.substr(0, host.find(':'));
    asio::error_code ec;
    asio::ip::make_address(host, ec);
    if (ec)
      throw ConfigError(dfile, dline,
                        "dns.servers: \"" + srv + "\" is not an IP address or IP:port");
    c.dns.servers.push_back(srv);
  }
  c.dns.static_zones = dns.getString("static_zones", "");
  if (!c.dns.static_zones.empty()) c.dns.static_zones = c.resolvePath(c.dns.static_zones);
  c.dns.timeout = dns.getDuration("timeout", c.dns.timeout);
  if (c.dns.timeout.count() < 100) dns.fail("timeout", "must be at least 100ms");
  c.dns.cache_size = dns.getSize("cache_size", c.dns.cache_size);
  c.dns.negative_ttl = std::chrono::duration_cast<std::chrono::seconds>(
      dns.getDuration("negative_ttl", c.dns.negative_ttl));
  dns.finish();

  TableReader sub = root.getTable("submission");
  SubmissionConfig& sc = c.submission;
  for (const std::string& l : sub.getStringList("listen", {})) {
    sc.listen.push_back(parseListen(sub, l));
    if (std::find(c.listen.begin(), c.listen.end(), sc.listen.back()) != c.listen.end())
      sub.fail("listen", "\"" + l + "\" is also in server.listen");
  }
  sc.users_file = c.resolvePath(sub.getString("users_file", "/etc/mxgate/users"));
  sc.require_tls = sub.getBool("require_tls", true);
  sc.max_auth_failures = static_cast<int>(sub.getInt("max_auth_failures", 3, 1, 100));
  sc.auth_on_mx = sub.getBool("auth_on_mx", false);
  // Passwords would cross the network in clear text, or AUTH never be offered.
  if (sc.authEnabled() && sc.require_tls && !c.tls.enabled)
    sub.fail(
        sub.has("require_tls") ? "require_tls" : "listen",
        "AUTH needs TLS: set tls.enabled = true (or require_tls = false on a trusted network)");
  sub.finish();

  TableReader relay = root.getTable("relay");
  auto [rfile, rline] = relay.where("trusted_networks");
  for (const std::string& n : relay.getStringList("trusted_networks", {})) {
    auto net = Network::parse(n);
    if (!net)
      throw ConfigError(rfile, rline,
                        "relay.trusted_networks: \"" + n + "\" is not an address or CIDR network");
    c.trusted_networks.add(*net);
  }
  relay.finish();

  readDomains(root, c);

  TableReader policy = root.getTable("policy");
  PolicyConfig& p = c.policy;
  p.add_header = policy.getDouble("add_header", p.add_header);
  p.tag_subject = policy.getDouble("tag_subject", p.tag_subject);
  if (policy.has("quarantine")) p.quarantine = policy.getDouble("quarantine", 0);
  if (policy.has("discard")) p.discard = policy.getDouble("discard", 0);
  p.reject = policy.getDouble("reject", p.reject);
  p.subject_tag = policy.getString("subject_tag", p.subject_tag);
  p.status_header = policy.getString("status_header", p.status_header);
  p.reject_text = policy.getString("reject_text", p.reject_text);
  // Blame whichever of the two keys the file sets, so the line points at it.
  auto order = [&](const char* low, double lo, const char* high, double hi) {
    if (lo <= hi) return;
    if (policy.has(low) || !policy.has(high))
      policy.fail(low, fmt::format("{} must not exceed policy.{} ({})", lo, high, hi));
    policy.fail(high, fmt::format("{} must not be below policy.{} ({})", hi, low, lo));
  };
  order("add_header", p.add_header, "tag_subject", p.tag_subject);
  order("tag_subject", p.tag_subject, "reject", p.reject);
  if (p.quarantine) order("quarantine", *p.quarantine, "reject", p.reject);
  if (p.discard) order("discard", *p.discard, "reject", p.reject);
  for (char ch : p.status_header)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-'))
      policy.fail("status_header", "must be a header field name (letters, digits, '-')");
  policy.finish();

  return c;
}

Config loadConfig(const std::string& file) {
  toml::value doc = parseTomlFile(file);
  TableReader root(doc, "");
  Config c = readConfig(file, root);
  root.raw("filters");
  root.raw("symbols");
  root.finish();
  return c;
}

std::shared_ptr<const Runtime> loadRuntime(const std::string& file, const FilterDeps& deps) {
  auto rt = std::make_shared<Runtime>();
  toml::value doc = parseTomlFile(file);
  TableReader root(doc, "");
  rt->config = readConfig(file, root);
  // Read on every load, so a reload picks up new users and a broken file
  // keeps the running configuration (and its users) in force.
  if (rt->config.submission.authEnabled()) {
    try {
      rt->users = std::make_shared<const UserDb>(UserDb::load(rt->config.submission.users_file));
    } catch (const ConfigError& e) {
      if (e.line() != 0) throw;
      root.getTable("submission")
          .fail("users_file", e.message() + " (" + rt->config.submission.users_file + ")");
    }
  }
  TableReader filters = root.getTable("filters");
  rt->pipeline.build(filters, filterRegistry(), rt->symbols, deps);
  TableReader symbols = root.getTable("symbols");
  for (const std::string& name : symbols.keys()) {
    const toml::value& v = symbols.raw(name);
    if (!v.is_floating() && !v.is_integer()) symbols.fail(name, "weight must be a number");
    double w = v.is_integer() ? static_cast<double>(v.as_integer()) : v.as_floating();
    if (!rt->symbols.setWeight(name, w))
      symbols.fail(name, "no enabled filter declares symbol " + name);
  }
  root.finish();
  return rt;
}

}  // namespace mxgate
