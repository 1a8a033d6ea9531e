#include "filters/dkim/dkim_tags.h"

#include <strings.h>

#include "gateway/smtp/header_scan.h"
#include "gateway/util/strings.h"

namespace mxgate::dkim {
namespace {

bool isWsp(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool nameIs(std::string_view name, std::string_view want) {
  return name.size() == want.size() && strncasecmp(name.data(), want.data(), want.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && isWsp(s.back())) s.remove_suffix(1);
  return s;
}

// Drops RFC 5322 comments (nested, with quoted pairs) outside quoted strings.
std::string stripComments(std::string_view s) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      if (depth == 0) out.append(s.substr(i, 2));
      ++i;
    } else if (quoted) {
      out += c;
      if (c == '"') quoted = false;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    } else if (depth == 0) {
      if (c == '"') quoted = true;
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string SignatureRef::keyName() const {
  if (domain.empty() || selector.empty()) return {};
  return selector + "._domainkey." + domain;
}

std::map<std::string, std::string> parseTagList(std::string_view text) {
  std::map<std::string, std::string> tags;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t semi = text.find(';', pos);
    std::string_view spec =
        text.substr(pos, semi == std::string_view::npos ? text.npos : semi - pos);
    size_t eq = spec.find('=');
    if (eq != std::string_view::npos) {
      std::string name = toLower(trim(spec.substr(0, eq)));
      std::string value;
      for (char c : spec.substr(eq + 1))
        if (!isWsp(c)) value += c;
      if (!name.empty()) tags.emplace(std::move(name), std::move(value));
    }
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return tags;
}

std::vector<SignatureRef> findSignatures(std::string_view message) {
  std::vector<SignatureRef> out;
  smtp::scanHeaders(message, [&](const smtp::HeaderField& f) {
    if (!nameIs(f.name, "DKIM-Signature")) return true;
    auto tags = parseTagList(f.value);
    SignatureRef ref;
    ref.domain = toLower(tags["d"]);
    ref.selector = toLower(tags["s"]);
    ref.algorithm = toLower(tags["a"]);
    ref.header_b = tags["b"].substr(0, 8);
    out.push_back(std::move(ref));
    return true;
  });
  return out;
}

std::string fromDomain(std::string_view message) {
  int count = 0;
  std::string value;
  smtp::scanHeaders(message, [&](const smtp::HeaderField& f) {
    if (nameIs(f.name, "From")) {
      ++count;
      value = stripComments(f.value);
    }
    return true;
  });
  if (count != 1) return {};
  std::string_view addr = value;
  // "Name <local@domain>" or a bare addr-spec; a group or a list of
  // several authors has no single domain to sign for.
  size_t lt = addr.rfind('<');
  if (lt != std::string_view::npos) {
    size_t gt = addr.find('>', lt);
    if (gt == std::string_view::npos) return {};
    addr = addr.substr(lt + 1, gt - lt - 1);
  } else if (addr.find(',') != std::string_view::npos) {
    return {};
  }
  addr = trim(addr);
  size_t at = addr.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string_view domain = trim(addr.substr(at + 1));
  if (domain.empty() || domain.find_first_of(" \t\"<>;:,") != std::string_view::npos) return {};
  if (domain.back() == '.') domain.remove_suffix(1);
  return toLower(domain);
}

}  // namespace mxgate::dkim
