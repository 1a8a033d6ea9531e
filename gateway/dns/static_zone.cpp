#include "gateway/dns/static_zone.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "gateway/config/config_error.h"
#include "gateway/dns/resolver.h"

namespace mxgate {

namespace {

struct Token {
  std::string text;
  bool quoted = false;
};

// Splits a line into words and "quoted strings"; '#' outside quotes ends it.
std::vector<Token> tokenize(std::string_view line, const std::string& file, uint32_t lineno) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < line.size()) {
    char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
    } else if (c == '#') {
      break;
    } else if (c == '"') {
      Token t{"", true};
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char d = line[i++];
        if (d == '"') {
          closed = true;
          break;
        }
        if (d == '\\' && i < line.size()) d = line[i++];
        t.text += d;
      }
      if (!closed) throw ConfigError(file, lineno, "unterminated quoted string");
      out.push_back(std::move(t));
    } else {
      Token t;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
             line[i] != '#' && line[i] != '"') {
        t.text += line[i++];
      }
      out.push_back(std::move(t));
    }
  }
  return out;
}

bool parseUint(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out <= max;
}

bool validName(std::string_view n) {
  if (n.empty() || n.size() > 253) return false;
  for (char c : n) {
    if (c == ' ' || c == '"' || static_cast<unsigned char>(c) < 0x21) return false;
  }
  return true;
}

}  // namespace

void StaticZoneBackend::loadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, 0, "cannot read zone file");
  std::stringstream ss;
  ss << in.rdbuf();
  loadText(ss.str(), path);
}

void StaticZoneBackend::loadText(std::string_view text, const std::string& file) {
  uint32_t lineno = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    ++lineno;
    addLine(text.substr(pos, nl - pos), file, lineno);
    pos = nl + 1;
  }
}

void StaticZoneBackend::addRecord(std::string_view name, std::string_view type,
                                  std::string_view value, uint32_t ttl) {
  std::string line(name);
  line += " ttl=" + std::to_string(ttl) + " ";
  line += type;
  line += ' ';
  line += value;
  addLine(line, "<code>", 0);
}

void StaticZoneBackend::addLine(std::string_view line, const std::string& file, uint32_t lineno) {
  std::vector<Token> tok = tokenize(line, file, lineno);
  if (tok.empty()) return;
  auto fail = [&](const std::string& msg) -> void { throw ConfigError(file, lineno, msg); };
  if (tok[0].quoted || !validName(tok[0].text)) fail("bad name '" + tok[0].text + "'");
  std::string name = normalizeDnsName(tok[0].text);
  if (name.empty()) fail("bad name '" + tok[0].text + "'");
  size_t i = 1;
  uint32_t ttl = kDefaultTtl;
  if (i < tok.size() && !tok[i].quoted && tok[i].text.starts_with("ttl=")) {
    uint64_t v;
    if (!parseUint(std::string_view(tok[i].text).substr(4), 0x7fffffff, &v)) {
      fail("bad ttl '" + tok[i].text + "'");
    }
    ttl = static_cast<uint32_t>(v);
    ++i;
  }
  if (i >= tok.size()) fail("missing record type after '" + tok[0].text + "'");
  std::string type = tok[i].text;
  for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ++i;
  std::vector<Token> args(tok.begin() + static_cast<std::ptrdiff_t>(i), tok.end());
  auto wantArgs = [&](size_t n) {
    if (args.size() != n) {
      fail(type + " needs " + std::to_string(n) + " value" + (n == 1 ? "" : "s") + ", got " +
           std::to_string(args.size()));
    }
  };

  Record rec{RecordType::kA, "", {}, ttl};
  DnsStatus forced = DnsStatus::kOk;
  if (type == "A" || type == "AAAA") {
    wantArgs(1);
    bool v6 = type == "AAAA";
    unsigned char buf[16];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, args[0].text.c_str(), buf) != 1) {
      fail("bad " + type + " address '" + args[0].text + "'");
    }
    inet_ntop(v6 ? AF_INET6 : AF_INET, buf, text, sizeof text);
    rec.type = v6 ? RecordType::kAaaa : RecordType::kA;
    rec.text = text;
  } else if (type == "MX") {
    wantArgs(2);
    uint64_t pref;
    if (!parseUint(args[0].text, 65535, &pref)) fail("bad MX preference '" + args[0].text + "'");
    if (!validName(args[1].text)) fail("bad MX host '" + args[1].text + "'");
    rec.type = RecordType::kMx;
    rec.text = std::to_string(pref) + " " + normalizeDnsName(args[1].text);
  } else if (type == "TXT") {
    if (args.empty()) fail("TXT needs at least one string");
    rec.type = RecordType::kTxt;
    for (auto& a : args) {
      if (a.text.size() > 255) fail("TXT string longer than 255 bytes");
      rec.text += a.text;
      rec.txt.push_back(a.text);
    }
  } else if (type == "PTR" || type == "CNAME") {
    wantArgs(1);
    if (!validName(args[0].text)) fail("bad " + type + " target '" + args[0].text + "'");
    rec.type = type == "PTR" ? RecordType::kPtr : RecordType::kCname;
    rec.text = normalizeDnsName(args[0].text);
  } else if (type == "TIMEOUT" || type == "SERVFAIL" || type == "NXDOMAIN") {
    wantArgs(0);
    forced = type == "TIMEOUT"    ? DnsStatus::kTimeout
             : type == "SERVFAIL" ? DnsStatus::kServFail
                                  : DnsStatus::kNxDomain;
  } else {
    fail("unknown record type '" + tok[i - 1].text + "'");
  }

  std::lock_guard lock(mu_);
  Node& node = names_[name];
  if (forced != DnsStatus::kOk) {
    if (!node.records.empty()) fail(type + " for '" + name + "', which has records");
    node.forced = forced;
    return;
  }
  if (node.forced != DnsStatus::kOk) fail("record for '" + name + "', which is marked " + type);
  if (rec.type == RecordType::kCname) {
    if (!node.records.empty()) fail("CNAME for '" + name + "', which has other records");
  } else {
    for (auto& r : node.records) {
      if (r.type == RecordType::kCname) fail("record for '" + name + "', which has a CNAME");
    }
  }
  node.records.push_back(std::move(rec));
}

DnsAnswer StaticZoneBackend::answer(std::string_view qname, RecordType type) const {
  DnsAnswer a;
  std::string name = normalizeDnsName(qname);
  std::lock_guard lock(mu_);
  for (int hops = 0; hops <= 8; ++hops) {
    auto it = names_.find(name);
    if (it == names_.end() || it->second.forced == DnsStatus::kNxDomain) {
      a.status = DnsStatus::kNxDomain;
      return a;
    }
    const Node& node = it->second;
    if (node.forced != DnsStatus::kOk) {
      a.status = node.forced;
      return a;
    }
    const Record* cname = nullptr;
    bool first = true;
    for (const Record& r : node.records) {
      if (r.type == RecordType::kCname && type != RecordType::kCname) cname = &r;
      if (r.type != type) continue;
      a.records.push_back(r.text);
      if (type == RecordType::kTxt) a.txt.push_back(r.txt);
      a.ttl = first ? r.ttl : std::min(a.ttl, r.ttl);
      first = false;
    }
    if (!a.records.empty()) {
      a.status = DnsStatus::kOk;
      return a;
    }
    if (cname == nullptr) {
      a.status = DnsStatus::kNoData;
      return a;
    }
    name = cname->text;
  }
  a.status = DnsStatus::kServFail;  // CNAME loop
  return a;
}

void StaticZoneBackend::query(const std::string& name, RecordType type, Callback done) {
  {
    std::lock_guard lock(mu_);
    ++queries_;
  }
  done(answer(name, type));
}

uint64_t StaticZoneBackend::queries() const {
  std::lock_guard lock(mu_);
  return queries_;
}

}  // namespace mxgate
