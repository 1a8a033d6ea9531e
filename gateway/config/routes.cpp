// [[route]] and [delivery.priority]: where accepted mail goes, and in which
// order. Kept apart from config.cpp, which reads the other sections.
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "gateway/config/config.h"
#include "gateway/config/config_error.h"
#include "gateway/config/table_reader.h"
#include "gateway/util/strings.h"

namespace mxgate {

const char* routeTypeName(RouteConfig::Type t) {
  switch (t) {
    case RouteConfig::Type::kLocal:
      return "local";
    case RouteConfig::Type::kForward:
      return "forward";
    case RouteConfig::Type::kSmarthost:
      return "smarthost";
    case RouteConfig::Type::kMx:
      return "mx";
    case RouteConfig::Type::kBackupMx:
      return "backup_mx";
  }
  return "mx";
}

bool RouteConfig::matches(std::string_view d, int priority) const {
  if (priority < min_priority || priority > max_priority) return false;
  for (const std::string& p : domains) {
    if (p == "*" || p == d) return true;
    if (p.front() == '.' && d.size() > p.size() && d.ends_with(p)) return true;
  }
  return false;
}

namespace {

// "host", "host:port", "[v6]:port", each optionally followed by " weight=N".
RouteConfig::Host parseHost(TableReader& t, const std::string& text) {
  RouteConfig::Host h;
  std::string s = text;
  if (size_t w = s.find(" weight="); w != std::string::npos) {
    std::string n = s.substr(w + 8);
    s.resize(w);
    try {
      size_t used = 0;
      long v = std::stol(n, &used);
      if (used != n.size() || v < 1 || v > 1000) throw std::invalid_argument(n);
      h.weight = static_cast<uint32_t>(v);
    } catch (const std::exception&) {
      t.fail("hosts", "\"" + text + "\": weight must be a number from 1 to 1000");
    }
  }
  std::string port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos) t.fail("hosts", "\"" + text + "\": missing ']'");
    h.host = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') t.fail("hosts", "\"" + text + "\": expected ':' after ']'");
      port = s.substr(close + 2);
    }
  } else if (size_t colon = s.rfind(':'); colon != std::string::npos) {
    h.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  } else {
    h.host = s;
  }
  if (h.host.empty()) t.fail("hosts", "\"" + text + "\": empty host name");
  if (!port.empty()) {
    try {
      size_t used = 0;
      long p = std::stol(port, &used);
      if (used != port.size() || p < 1 || p > 65535) throw std::invalid_argument(port);
      h.port = static_cast<uint16_t>(p);
    } catch (const std::exception&) {
      t.fail("hosts", "\"" + text + "\": port must be a number from 1 to 65535");
    }
  }
  h.host = toLower(h.host);
  return h;
}

std::vector<std::chrono::seconds> readSchedule(TableReader& t, const char* key,
                                               std::vector<std::chrono::seconds> def) {
  if (!t.has(key)) return def;
  std::vector<std::chrono::seconds> out;
  for (const std::string& text : t.getStringList(key, {})) {
    auto d = parseDuration(text);
    if (!d || d->count() < 1000) t.fail(key, "\"" + text + "\" is not a duration of at least 1s");
    out.push_back(std::chrono::duration_cast<std::chrono::seconds>(*d));
  }
  if (out.empty()) t.fail(key, "needs at least one interval");
  return out;
}

std::string readSecret(TableReader& t, const Config& c, const char* key) {
  std::string path = c.resolvePath(t.getString(key, ""));
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) t.fail(key, "cannot read " + path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) t.fail(key, path + " is empty (the password is its first line)");
  return line;
}

}  // namespace

void readPriorities(TableReader& delivery, PriorityConfig& p) {
  TableReader t = delivery.getTable("priority");
  p.normal = static_cast<int>(t.getInt("default", p.normal, 1, 10));
  if (t.has("sender_domains")) {
    TableReader d = t.getTable("sender_domains");
    for (const std::string& name : d.keys())
      p.sender_domains[toLower(name)] = static_cast<int>(d.getInt(name, p.normal, 1, 10));
    d.finish();
  }
  p.large_message = t.getSize("large_message", 0);
  p.large_priority = static_cast<int>(t.getInt("large_priority", p.large_priority, 1, 10));
  p.retry_priority = static_cast<int>(t.getInt("retry_priority", p.retry_priority, 1, 10));
  t.finish();
}

void readRoutes(TableReader& root, Config& c) {
  int n = 0;
  for (TableReader& t : root.getTableArray("route")) {
    ++n;
    RouteConfig r;
    r.file = t.file();
    r.line = t.line();
    r.name = t.getString("name", fmt::format("route{}", n));
    std::string type = t.getString("type", "");
    if (type == "local")
      r.type = RouteConfig::Type::kLocal;
    else if (type == "forward")
      r.type = RouteConfig::Type::kForward;
    else if (type == "smarthost")
      r.type = RouteConfig::Type::kSmarthost;
    else if (type == "mx")
      r.type = RouteConfig::Type::kMx;
    else if (type == "backup_mx")
      r.type = RouteConfig::Type::kBackupMx;
    else
      t.fail("type", "must be local, forward, smarthost, mx or backup_mx (got \"" + type + "\")");
    for (std::string d : t.getStringList("domains", {})) {
      d = toLower(d);
      if (d.empty() || (d != "*" && d.find_first_of(" \t*@") != std::string::npos))
        t.fail("domains", "\"" + d + "\" is not a domain, \".domain\" or \"*\"");
      r.domains.push_back(std::move(d));
    }
    if (r.domains.empty()) t.fail("domains", "needs at least one domain (\"*\" for any)");
    for (const std::string& h : t.getStringList("hosts", {})) r.hosts.push_back(parseHost(t, h));
    bool needs_hosts =
        r.type == RouteConfig::Type::kForward || r.type == RouteConfig::Type::kSmarthost;
    if (needs_hosts && r.hosts.empty())
      t.fail("hosts", std::string("a ") + routeTypeName(r.type) + " route needs hosts");
    if (!needs_hosts && !r.hosts.empty())
      t.fail("hosts", std::string("a ") + routeTypeName(r.type) + " route takes no hosts");
    std::string selection = t.getString("host_selection", "ordered");
    if (selection != "ordered" && selection != "weighted")
      t.fail("host_selection", "must be \"ordered\" or \"weighted\"");
    r.weighted = selection == "weighted";
    std::string tls = t.getString("tls", "may");
    if (tls == "none")
      r.tls = RouteConfig::Tls::kNone;
    else if (tls == "may")
      r.tls = RouteConfig::Tls::kMay;
    else if (tls == "encrypt")
      r.tls = RouteConfig::Tls::kEncrypt;
    else if (tls == "verify")
      r.tls = RouteConfig::Tls::kVerify;
    else
      t.fail("tls", "must be none, may, encrypt or verify");
    r.tls_ca_file = c.resolvePath(t.getString("tls_ca_file", ""));
    r.auth_user = t.getString("auth_user", "");
    r.auth_password = readSecret(t, c, "auth_password_file");
    if (r.auth_user.empty() != r.auth_password.empty())
      t.fail("auth_user", "auth_user and auth_password_file go together");
    if (!r.auth_user.empty() && r.tls == RouteConfig::Tls::kNone)
      t.fail("tls", "AUTH needs TLS: set tls to encrypt or verify (or may)");
    std::string prio = t.getString("priority", "1-10");
    int used = 0;
    if (sscanf(prio.c_str(), "%d-%d%n", &r.min_priority, &r.max_priority, &used) != 2 ||
        used != static_cast<int>(prio.size()) || r.min_priority < 1 || r.max_priority > 10 ||
        r.min_priority > r.max_priority)
      t.fail("priority", "must be a range \"a-b\" within 1-10");
    // A backup MX holds mail for its primary: retry often at first, then
    // daily, and never give up before the last attempt (RFC 5321 5.1).
    std::vector<std::chrono::seconds> backup_schedule{
        std::chrono::minutes(10), std::chrono::minutes(10), std::chrono::minutes(10),
        std::chrono::minutes(1440)};
    r.retry_schedule =
        readSchedule(t, "retry_schedule",
                     r.type == RouteConfig::Type::kBackupMx ? backup_schedule
                                                            : std::vector<std::chrono::seconds>{});
    if (t.has("max_lifetime")) {
      r.max_lifetime = std::chrono::duration_cast<std::chrono::seconds>(
          t.getDuration("max_lifetime", std::chrono::hours(1)));
      if (r.max_lifetime->count() < 60) t.fail("max_lifetime", "must be at least 1m");
    }
    r.concurrency = static_cast<size_t>(t.getInt("concurrency", 0, 0, 10000));
    for (const RouteConfig& other : c.delivery.routes)
      if (other.name == r.name) t.fail("name", "route \"" + r.name + "\" is defined twice");
    t.finish();
    c.delivery.routes.push_back(std::move(r));
  }
}

}  // namespace mxgate
