#include "gateway/smtp/command.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "gateway/util/strings.h"

namespace mxgate::smtp {
namespace {

std::string_view trimRight(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view trimLeft(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

bool isAtext(unsigned char c, bool utf8) {
  if (std::isalnum(c)) return true;
  if (c >= 0x80) return utf8;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

// Dot-string: atoms separated by single dots.
bool isDotString(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char ch : s) {
    if (ch == '.') {
      if (prev == '.') return false;
    } else if (!isAtext(static_cast<unsigned char>(ch), utf8)) {
      return false;
    }
    prev = ch;
  }
  return true;
}

// Quoted-string per RFC 5321: qtextSMTP or quoted-pairSMTP (backslash + printable).
bool isQuotedString(std::string_view s, bool utf8) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;
      unsigned char n = static_cast<unsigned char>(s[++i]);
      if (n < 32 || n > 126) return false;
    } else if (c == '"') {
      return false;
    } else if (!((c >= 32 && c <= 126) || (utf8 && c >= 0x80))) {
      return false;
    }
  }
  return true;
}

bool isDomain(std::string_view d, bool utf8) {
  if (d.empty() || d.size() > 255) return false;
  if (d.front() == '[') {
    // Address literal: [IPv4] or [IPv6:...] or [tag:content]; checked loosely,
    // a literal only has to be well-bracketed printable text here.
    if (d.back() != ']' || d.size() < 3) return false;
    for (char c : d.substr(1, d.size() - 2))
      if (c <= 32 || c >= 127 || c == '[' || c == ']' || c == '\\') return false;
    return true;
  }
  size_t start = 0;
  while (start <= d.size()) {
    size_t dot = d.find('.', start);
    std::string_view label = d.substr(start, dot == std::string_view::npos ? d.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char ch : label) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (!(std::isalnum(c) || c == '-' || (utf8 && c >= 0x80))) return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

// xtext (RFC 3461 4): printable ASCII except '+' and '=', or "+XX" hex.
bool isXtext(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        return false;
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return false;
    }
  }
  return true;
}

struct Param {
  std::string_view key;
  std::string_view value;
  bool has_value;
};

// Splits "K=V K2 K3=V3" on spaces. Returns false on an empty keyword.
bool splitParams(std::string_view params, std::vector<Param>* out) {
  while (true) {
    params = trimLeft(params);
    if (params.empty()) return true;
    size_t end = params.find(' ');
    std::string_view item = params.substr(0, end);
    params = end == std::string_view::npos ? std::string_view() : params.substr(end);
    size_t eq = item.find('=');
    Param p{item.substr(0, eq),
            eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1),
            eq != std::string_view::npos};
    if (p.key.empty()) return false;
    for (char c : p.key)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    out->push_back(p);
  }
}

}  // namespace

std::string domainOf(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return toLower(address.substr(at + 1));
}

std::string localPartOf(std::string_view address) {
  size_t at = address.rfind('@');
  return std::string(at == std::string_view::npos ? address : address.substr(0, at));
}

Command parseCommand(std::string_view line) {
  Command cmd;
  std::string_view trimmed = trimRight(line);
  if (trimLeft(trimmed).empty()) {
    cmd.verb = Verb::kEmpty;
    return cmd;
  }
  size_t sp = trimmed.find(' ');
  cmd.word = trimmed.substr(0, sp);
  cmd.arg = sp == std::string_view::npos ? std::string_view() : trimLeft(trimmed.substr(sp + 1));
  static constexpr std::array<std::pair<std::string_view, Verb>, 14> kVerbs{{
      {"HELO", Verb::kHelo},
      {"EHLO", Verb::kEhlo},
      {"MAIL", Verb::kMail},
      {"RCPT", Verb::kRcpt},
      {"DATA", Verb::kData},
      {"RSET", Verb::kRset},
      {"NOOP", Verb::kNoop},
      {"QUIT", Verb::kQuit},
      {"VRFY", Verb::kVrfy},
      {"EXPN", Verb::kExpn},
      {"HELP", Verb::kHelp},
      {"STARTTLS", Verb::kStartTls},
      {"AUTH", Verb::kAuth},
      {"BDAT", Verb::kBdat},
  }};
  for (const auto& [word, verb] : kVerbs) {
    if (iequals(cmd.word, word)) {
      cmd.verb = verb;
      break;
    }
  }
  return cmd;
}

bool isValidMailbox(std::string_view s, bool utf8) {
  if (s.size() > 254 + 64) return false;
  size_t at = s.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view local = s.substr(0, at);
  std::string_view domain = s.substr(at + 1);
  if (local.size() > 64 && !utf8) return false;
  if (!isDotString(local, utf8) && !isQuotedString(local, utf8)) return false;
  return isDomain(domain, utf8);
}

std::optional<ParseError> parsePath(std::string_view arg, std::string_view keyword, bool utf8,
                                    Path* out) {
  // keyword is "FROM" or "TO"; the colon must follow it directly.
  const bool is_mail = keyword == "FROM";
  const std::string usage = is_mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
  if (arg.size() <= keyword.size() || !iequals(arg.substr(0, keyword.size()), keyword) ||
      arg[keyword.size()] != ':') {
    return ParseError{501, "5.5.4", usage};
  }
  std::string_view rest = trimLeft(arg.substr(keyword.size() + 1));
  if (rest.empty() || rest.front() != '<') return ParseError{501, "5.5.4", usage};
  // Find the closing '>' outside a quoted local part.
  size_t i = 1;
  bool quoted = false;
  for (; i < rest.size(); ++i) {
    char c = rest[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == '>' && !quoted) {
      break;
    }
  }
  if (i >= rest.size()) return ParseError{501, "5.5.4", usage};
  std::string_view inner = rest.substr(1, i - 1);
  std::string_view after = rest.substr(i + 1);
  if (!after.empty() && after.front() != ' ') return ParseError{501, "5.5.4", usage};
  // A-d-l source route ("@a,@b:user@c"): accepted and ignored (RFC 5321 4.1.1.3, C).
  if (!inner.empty() && inner.front() == '@') {
    size_t colon = inner.find(':');
    if (colon == std::string_view::npos) return ParseError{501, "5.1.3", "Bad address syntax"};
    inner = inner.substr(colon + 1);
  }
  const auto bad_address = is_mail ? "5.1.7" : "5.1.3";
  if (inner.empty()) {
    if (!is_mail) return ParseError{501, "5.1.3", "Null recipient is not allowed"};
  } else if (!isValidMailbox(inner, utf8)) {
    // RFC 5321 4.5.1: "postmaster" without a domain must be accepted as a recipient.
    if (is_mail || !iequals(inner, "postmaster"))
      return ParseError{501, bad_address, "Bad address syntax"};
  }
  for (char c : inner)
    if (static_cast<unsigned char>(c) < 32 || c == 127)
      return ParseError{501, bad_address, "Bad address syntax"};
  out->address = std::string(inner);
  out->params = trimLeft(after);
  return std::nullopt;
}

std::optional<ParseError> parseMailParams(std::string_view params, uint64_t max_size,
                                          Envelope* env) {
  std::vector<Param> list;
  if (!splitParams(params, &list)) return ParseError{501, "5.5.4", "Bad parameter syntax"};
  for (const Param& p : list) {
    if (iequals(p.key, "SIZE")) {
      uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), n);
      if (!p.has_value || ec != std::errc() || ptr != p.value.data() + p.value.size())
        return ParseError{501, "5.5.4", "Bad SIZE parameter"};
      if (max_size != 0 && n > max_size)
        return ParseError{552, "5.3.4", "Message size exceeds fixed maximum message size"};
      env->declared_size = n;
    } else if (iequals(p.key, "BODY")) {
      if (!p.has_value) return ParseError{501, "5.5.4", "Bad BODY parameter"};
      if (iequals(p.value, "7BIT")) {
        env->body = "7BIT";
      } else if (iequals(p.value, "8BITMIME")) {
        env->body = "8BITMIME";
      } else {
        return ParseError{501, "5.5.4", "BODY must be 7BIT or 8BITMIME"};
      }
    } else if (iequals(p.key, "SMTPUTF8")) {
      if (p.has_value) return ParseError{501, "5.5.4", "SMTPUTF8 takes no value"};
      env->smtputf8 = true;
    } else if (iequals(p.key, "RET")) {
      if (!p.has_value || !(iequals(p.value, "FULL") || iequals(p.value, "HDRS")))
        return ParseError{501, "5.5.4", "RET must be FULL or HDRS"};
      env->ret = toLower(p.value) == "full" ? "FULL" : "HDRS";
    } else if (iequals(p.key, "ENVID")) {
      if (!p.has_value || p.value.empty() || p.value.size() > 100 || !isXtext(p.value))
        return ParseError{501, "5.5.4", "Bad ENVID parameter"};
      env->envid = std::string(p.value);
    } else if (iequals(p.key, "AUTH")) {
      // RFC 4954 5: accepted and ignored unless the client is trusted to assert it.
      if (!p.has_value || (!isXtext(p.value) && p.value != "<>"))
        return ParseError{501, "5.5.4", "Bad AUTH parameter"};
    } else {
      return ParseError{555, "5.5.4", "Unsupported parameter " + std::string(p.key)};
    }
  }
  return std::nullopt;
}

std::optional<ParseError> parseRcptParams(std::string_view params, Recipient* rcpt) {
  std::vector<Param> list;
  if (!splitParams(params, &list)) return ParseError{501, "5.5.4", "Bad parameter syntax"};
  for (const Param& p : list) {
    if (iequals(p.key, "NOTIFY")) {
      if (!p.has_value || p.value.empty()) return ParseError{501, "5.5.4", "Bad NOTIFY parameter"};
      // NEVER alone, or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1).
      bool never = false, other = false;
      size_t start = 0;
      while (start <= p.value.size()) {
        size_t comma = p.value.find(',', start);
        std::string_view item =
            p.value.substr(start, comma == std::string_view::npos ? p.value.npos : comma - start);
        if (iequals(item, "NEVER")) {
          never = true;
        } else if (iequals(item, "SUCCESS") || iequals(item, "FAILURE") || iequals(item, "DELAY")) {
          other = true;
        } else {
          return ParseError{501, "5.5.4", "Bad NOTIFY parameter"};
        }
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      if (never && other) return ParseError{501, "5.5.4", "NOTIFY=NEVER cannot be combined"};
      rcpt->notify = std::string(p.value);
    } else if (iequals(p.key, "ORCPT")) {
      // addr-type ";" xtext (RFC 3461 4.2). addr-type is an atom; checking it
      // keeps control characters (a tab would split the spool's envelope
      // line) out of what is stored.
      size_t semi = p.value.find(';');
      if (!p.has_value || semi == std::string_view::npos || semi == 0 ||
          !isDotString(p.value.substr(0, semi), false) || !isXtext(p.value.substr(semi + 1)))
        return ParseError{501, "5.5.4", "Bad ORCPT parameter"};
      rcpt->orcpt = std::string(p.value);
    } else {
      return ParseError{555, "5.5.4", "Unsupported parameter " + std::string(p.key)};
    }
  }
  return std::nullopt;
}

}  // namespace mxgate::smtp
