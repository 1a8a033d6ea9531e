#include "filters/spf/spf_record.h"

#include <cctype>
#include <ctime>
#include <vector>

#include "gateway/util/strings.h"

namespace mxgate {
namespace {

bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
bool isAlnum(char c) {
  return isAlpha(c) || isDigit(c);
}
bool isDelimiter(char c) {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

// Walks a macro-string; calls literal(text) and macro(letter, digits,
// reverse, delimiters, upper). False if malformed.
template <class Literal, class Macro>
bool walkMacros(std::string_view s, bool exp_text, Literal literal, Macro macro) {
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c != '%') {
      // macro-literal: visible ASCII except '%'; exp text also allows spaces.
      if (!(c >= 0x21 && c <= 0x7e) && !(exp_text && c == ' ')) return false;
      literal(std::string_view(&s[i], 1));
      ++i;
      continue;
    }
    if (i + 1 >= s.size()) return false;
    char n = s[i + 1];
    if (n == '%' || n == '_' || n == '-') {
      literal(n == '%' ? "%" : n == '_' ? " " : "%20");
      i += 2;
      continue;
    }
    if (n != '{') return false;
    size_t end = s.find('}', i + 2);
    if (end == std::string_view::npos || end == i + 2) return false;
    std::string_view body = s.substr(i + 2, end - i - 2);
    char letter = body[0];
    char lower = asciiLower(letter);
    std::string_view allowed = exp_text ? "slodiphcrtv" : "slodiphv";
    if (allowed.find(lower) == std::string_view::npos) return false;
    size_t j = 1;
    int digits = 0;
    bool any_digit = false;
    while (j < body.size() && isDigit(body[j])) {
      digits = std::min(digits * 10 + (body[j] - '0'), 1000);
      any_digit = true;
      ++j;
    }
    if (any_digit && digits == 0) return false;
    bool reverse = false;
    if (j < body.size() && (body[j] == 'r' || body[j] == 'R')) {
      reverse = true;
      ++j;
    }
    std::string_view delims = body.substr(j);
    for (char d : delims)
      if (!isDelimiter(d)) return false;
    macro(lower, digits, reverse, delims, letter != lower);
    i = end + 1;
  }
  return true;
}

bool validMacroString(std::string_view s, bool exp_text) {
  return walkMacros(
      s, exp_text, [](std::string_view) {}, [](char, int, bool, std::string_view, bool) {});
}

// toplabel (RFC 7208 7.1): alphanumerics with at least one letter, or
// hyphenated alphanumerics not starting or ending with a hyphen.
bool validTopLabel(std::string_view l) {
  if (l.empty()) return false;
  bool alpha = false, hyphen = false;
  for (char c : l) {
    if (isAlpha(c))
      alpha = true;
    else if (c == '-')
      hyphen = true;
    else if (!isDigit(c))
      return false;
  }
  if (hyphen) return isAlnum(l.front()) && isAlnum(l.back());
  return alpha;
}

// domain-spec = macro-string domain-end; domain-end is "." toplabel ["."]
// or a macro-expand.
bool validDomainSpec(std::string_view s) {
  if (s.empty() || !validMacroString(s, false)) return false;
  if (s.back() == '}') {
    size_t open = s.rfind("%{");
    if (open != std::string_view::npos && (open == 0 || s[open - 1] != '%')) return true;
  }
  if (s.back() == '.') s.remove_suffix(1);
  size_t dot = s.rfind('.');
  if (dot == std::string_view::npos) return false;
  return validTopLabel(s.substr(dot + 1));
}

// "/N" with no leading zeros, N <= max. Returns -1 if malformed.
int parseCidr(std::string_view s, int max) {
  if (s.empty() || s.size() > 3) return -1;
  if (s.size() > 1 && s[0] == '0') return -1;
  int v = 0;
  for (char c : s) {
    if (!isDigit(c)) return -1;
    v = v * 10 + (c - '0');
  }
  return v <= max ? v : -1;
}

struct Cidrs {
  int v4 = -1, v6 = -1;  // -1: absent
};

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!isDigit(c)) return false;
  return true;
}

// Splits "domain/24//64" into domain and lengths. A '/' followed by other
// than digits belongs to the domain-spec (it is a macro-literal). False if a
// length is malformed (leading zero, too large).
bool splitDualCidr(std::string_view arg, std::string_view* domain, Cidrs* cidrs) {
  size_t dbl = arg.rfind("//");
  if (dbl != std::string_view::npos && allDigits(arg.substr(dbl + 2))) {
    cidrs->v6 = parseCidr(arg.substr(dbl + 2), 128);
    if (cidrs->v6 < 0) return false;
    arg = arg.substr(0, dbl);
  }
  size_t slash = arg.rfind('/');
  if (slash != std::string_view::npos && allDigits(arg.substr(slash + 1))) {
    cidrs->v4 = parseCidr(arg.substr(slash + 1), 32);
    if (cidrs->v4 < 0) return false;
    arg = arg.substr(0, slash);
  }
  *domain = arg;
  return true;
}

bool validIp4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t dot = s.find('.', i);
    std::string_view p = s.substr(i, dot == std::string_view::npos ? s.size() - i : dot - i);
    if (p.empty() || p.size() > 3) return false;
    int v = 0;
    for (char c : p) {
      if (!isDigit(c)) return false;
      v = v * 10 + (c - '0');
    }
    if (v > 255) return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    i = dot + 1;
  }
  return parts == 4;
}

bool validIp6(std::string_view s) {
  if (s.empty() || s.find(':') == std::string_view::npos) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  return true;  // libspf2's inet_pton check catches the rest
}

}  // namespace

std::optional<std::string> prepareRecord(std::string_view record, bool client_v6,
                                         std::string* error) {
  auto bad = [&](std::string why) -> std::optional<std::string> {
    *error = std::move(why);
    return std::nullopt;
  };
  std::vector<std::string_view> terms;
  for (size_t i = 0; i < record.size();) {
    if (record[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = record.find(' ', i);
    if (end == std::string_view::npos) end = record.size();
    terms.push_back(record.substr(i, end - i));
    i = end;
  }
  if (terms.empty() || !iequals(terms[0], "v=spf1")) return bad("not an SPF record");
  std::string out = "v=spf1";
  std::string redirect, exp;
  bool has_all = false;
  for (size_t t = 1; t < terms.size(); ++t) {
    std::string_view term = terms[t];
    for (char c : term)
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
        return bad("invalid character in term \"" + std::string(term) + "\"");
    // Modifier: name "=" value, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
    size_t eq = term.find('=');
    size_t colon = term.find_first_of(":/");
    if (eq != std::string_view::npos && (colon == std::string_view::npos || eq < colon)) {
      std::string_view name = term.substr(0, eq), value = term.substr(eq + 1);
      bool name_ok = !name.empty() && isAlpha(name[0]);
      for (char c : name)
        if (!isAlnum(c) && c != '-' && c != '_' && c != '.') name_ok = false;
      if (!name_ok) return bad("invalid modifier \"" + std::string(term) + "\"");
      if (iequals(name, "redirect") || iequals(name, "exp")) {
        std::string& slot = iequals(name, "redirect") ? redirect : exp;
        if (!slot.empty()) return bad(std::string(name) + "= appears twice");
        if (!validDomainSpec(value)) return bad("invalid domain in \"" + std::string(term) + "\"");
        slot = std::string(term);
      } else if (!validMacroString(value, false)) {
        return bad("invalid modifier value in \"" + std::string(term) + "\"");
      }
      continue;
    }
    std::string_view q;
    if (term[0] == '+' || term[0] == '-' || term[0] == '~' || term[0] == '?') {
      q = term.substr(0, 1);
      term.remove_prefix(1);
    }
    size_t sep = term.find_first_of(":/");
    std::string_view mech = term.substr(0, sep);
    std::string_view rest = sep == std::string_view::npos ? "" : term.substr(sep);
    std::string lower = toLower(mech);
    std::string qs(q);
    if (lower == "all") {
      if (!rest.empty()) return bad("invalid all \"" + std::string(term) + "\"");
      has_all = true;
    } else if (lower == "include" || lower == "exists") {
      if (rest.empty() || rest[0] != ':' || !validDomainSpec(rest.substr(1)))
        return bad("invalid " + lower + " \"" + std::string(term) + "\"");
    } else if (lower == "a" || lower == "mx" || lower == "ptr") {
      std::string_view domain;
      Cidrs cidrs;
      std::string_view arg = rest;
      if (lower == "ptr") {
        domain = arg.empty() ? arg : arg.substr(1);
        if (!arg.empty() && (arg[0] != ':' || !validDomainSpec(domain)))
          return bad("invalid ptr \"" + std::string(term) + "\"");
      } else {
        if (!splitDualCidr(arg, &domain, &cidrs))
          return bad("invalid prefix length in \"" + std::string(term) + "\"");
        if (!domain.empty() && (domain[0] != ':' || !validDomainSpec(domain.substr(1))))
          return bad("invalid domain in \"" + std::string(term) + "\"");
        int len = client_v6 ? cidrs.v6 : cidrs.v4;
        if (lower == "a" && !client_v6 && len == 0) {
          // Any A record matches: the same question and answer as exists.
          std::string target = domain.empty() ? "%{d}" : std::string(domain.substr(1));
          out += " " + qs + "exists:" + target;
          continue;
        }
        // libspf2 reads a length of 0 as "whole address"; the other
        // family's length does not matter for this client.
        std::string rebuilt = qs + lower + std::string(domain);
        if (!client_v6 && cidrs.v4 > 0) rebuilt += "/" + std::to_string(cidrs.v4);
        if (client_v6 && cidrs.v6 > 0) rebuilt += "//" + std::to_string(cidrs.v6);
        out += " " + rebuilt;
        continue;
      }
    } else if (lower == "ip4" || lower == "ip6") {
      bool v6 = lower == "ip6";
      if (rest.empty() || rest[0] != ':') return bad("invalid " + lower);
      std::string_view net = rest.substr(1);
      int len = v6 ? 128 : 32;
      if (size_t slash = net.find('/'); slash != std::string_view::npos) {
        len = parseCidr(net.substr(slash + 1), v6 ? 128 : 32);
        net = net.substr(0, slash);
        if (len < 0) return bad("invalid prefix length in \"" + std::string(term) + "\"");
      }
      if (v6 ? !validIp6(net) : !validIp4(net))
        return bad("invalid address in \"" + std::string(term) + "\"");
      if (len == 0) {
        out += v6 ? " " + qs + "ip6:::/1 " + qs + "ip6:8000::/1"
                  : " " + qs + "ip4:0.0.0.0/1 " + qs + "ip4:128.0.0.0/1";
        continue;
      }
    } else {
      return bad("unknown mechanism \"" + std::string(term) + "\"");
    }
    out += " " + std::string(terms[t]);
  }
  if (!redirect.empty() && !has_all) out += " " + redirect;
  if (!exp.empty()) out += " " + exp;
  return out;
}

std::optional<std::string> expandMacros(std::string_view text, const MacroValues& v,
                                        bool exp_text) {
  std::string out;
  std::string p_cache;
  bool p_done = false;
  bool ok = walkMacros(
      text, exp_text, [&](std::string_view lit) { out += lit; },
      [&](char letter, int digits, bool reverse, std::string_view delims, bool upper) {
        std::string value;
        switch (letter) {
          case 's':
            value = v.sender;
            break;
          case 'l':
            value = v.local_part;
            break;
          case 'o':
            value = v.sender_dom;
            break;
          case 'd':
            value = v.domain;
            break;
          case 'i':
            value = v.ip_dotted;
            break;
          case 'c':
            value = v.ip_readable;
            break;
          case 'h':
            value = v.helo;
            break;
          case 'r':
            value = v.receiver;
            break;
          case 'v':
            value = v.v6 ? "ip6" : "in-addr";
            break;
          case 't':
            value = std::to_string(std::time(nullptr));
            break;
          case 'p':
            if (!p_done) {
              p_cache = v.validated_name ? v.validated_name() : "unknown";
              p_done = true;
            }
            value = p_cache;
            break;
        }
        if (delims.empty()) delims = ".";
        std::vector<std::string> parts;
        std::string cur;
        for (char c : value) {
          if (delims.find(c) != std::string_view::npos) {
            parts.push_back(cur);
            cur.clear();
          } else {
            cur += c;
          }
        }
        parts.push_back(cur);
        if (reverse) std::reverse(parts.begin(), parts.end());
        size_t from = digits > 0 && static_cast<size_t>(digits) < parts.size()
                          ? parts.size() - static_cast<size_t>(digits)
                          : 0;
        std::string joined;
        for (size_t k = from; k < parts.size(); ++k) {
          if (k > from) joined += '.';
          joined += parts[k];
        }
        if (upper) {
          // RFC 7208 7.3: URL-escape all but the unreserved characters.
          static const char* kHex = "0123456789ABCDEF";
          std::string esc;
          for (unsigned char c : joined) {
            if (isAlnum(static_cast<char>(c)) || c == '-' || c == '.' || c == '_' || c == '~') {
              esc += static_cast<char>(c);
            } else {
              esc += '%';
              esc += kHex[c >> 4];
              esc += kHex[c & 15];
            }
          }
          joined = esc;
        }
        out += joined;
      });
  if (!ok) return std::nullopt;
  return out;
}

std::string truncateDomain(std::string name) {
  while (name.size() > 253) {
    size_t dot = name.find('.');
    if (dot == std::string::npos) break;
    name.erase(0, dot + 1);
  }
  return name;
}

}  // namespace mxgate
