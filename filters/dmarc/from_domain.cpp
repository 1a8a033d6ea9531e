#include "filters/dmarc/from_domain.h"

#include <idn2.h>
#include <strings.h>

#include <algorithm>
#include <cstdlib>

#include "gateway/smtp/header_scan.h"
#include "gateway/util/strings.h"

namespace mxgate::dmarc {
namespace {

// atext (RFC 5322 3.2.3), plus UTF-8 (RFC 6532 3.2).
bool isAtext(unsigned char c) {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

struct Token {
  enum Kind { kAtom, kQuoted, kLiteral, kSpecial } kind;
  std::string_view text;  // atom text, quoted content, literal content, or the special char
};

// Splits a field value into tokens, dropping whitespace and comments.
// False on an unterminated quoted string, comment or domain literal, or a
// stray character.
bool tokenize(std::string_view v, std::vector<Token>* out) {
  size_t i = 0;
  while (i < v.size()) {
    unsigned char c = v[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '(') {
      int depth = 0;
      for (; i < v.size(); ++i) {
        if (v[i] == '\\')
          ++i;
        else if (v[i] == '(')
          ++depth;
        else if (v[i] == ')' && --depth == 0)
          break;
      }
      if (i >= v.size()) return false;
      ++i;
    } else if (c == '"' || c == '[') {
      char close = c == '"' ? '"' : ']';
      size_t start = ++i;
      while (i < v.size() && v[i] != close) i += v[i] == '\\' ? 2 : 1;
      if (i >= v.size()) return false;
      out->push_back({c == '"' ? Token::kQuoted : Token::kLiteral, v.substr(start, i - start)});
      ++i;
    } else if (isAtext(c)) {
      size_t start = i;
      while (i < v.size() && isAtext(v[i])) ++i;
      out->push_back({Token::kAtom, v.substr(start, i - start)});
    } else if (c == '<' || c == '>' || c == '@' || c == ',' || c == ':' || c == ';' || c == '.') {
      out->push_back({Token::kSpecial, v.substr(i, 1)});
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

// A recursive-descent parser over the tokens of one field.
class MailboxListParser {
 public:
  explicit MailboxListParser(const std::vector<Token>& t) : t_(t) {}

  // mailbox-list / address-list (RFC 6854); the raw domains found.
  bool parse(std::vector<std::string>* domains) {
    if (!list(domains, /*in_group=*/false)) return false;
    return pos_ == t_.size();
  }

 private:
  bool isSpecial(char c) const {
    return pos_ < t_.size() && t_[pos_].kind == Token::kSpecial && t_[pos_].text[0] == c;
  }
  bool isWord() const {
    return pos_ < t_.size() && (t_[pos_].kind == Token::kAtom || t_[pos_].kind == Token::kQuoted);
  }

  // Elements separated by commas; empty elements are the obsolete list form.
  bool list(std::vector<std::string>* domains, bool in_group) {
    while (pos_ < t_.size() && !(in_group && isSpecial(';'))) {
      if (isSpecial(',')) {
        ++pos_;
        continue;
      }
      if (!element(domains, in_group)) return false;
      if (pos_ < t_.size() && !isSpecial(',') && !(in_group && isSpecial(';'))) return false;
    }
    return true;
  }

  bool element(std::vector<std::string>* domains, bool in_group) {
    // A phrase (display name or group name) or a local-part: words and dots.
    size_t start = pos_;
    while (isWord() || isSpecial('.')) ++pos_;
    size_t words_end = pos_;
    if (isSpecial('<')) {
      ++pos_;
      return angleAddr(domains);
    }
    if (isSpecial(':') && words_end > start && !in_group) {
      ++pos_;
      if (!list(domains, /*in_group=*/true) || !isSpecial(';')) return false;
      ++pos_;
      return true;
    }
    if (isSpecial('@') && localPart(start, words_end)) {
      ++pos_;
      return domain(domains);
    }
    return false;
  }

  // word *("." word) (obs-local-part allows the dots anywhere between words).
  bool localPart(size_t from, size_t to) const {
    bool want_word = true;
    for (size_t i = from; i < to; ++i) {
      bool word = t_[i].kind != Token::kSpecial;
      if (word != want_word) return false;
      want_word = !want_word;
    }
    return to > from && !want_word;
  }

  // After '<': [obs-route] addr-spec '>'.
  bool angleAddr(std::vector<std::string>* domains) {
    if (isSpecial('@')) {  // obs-route: @a,@b: (ignored)
      while (pos_ < t_.size() && !isSpecial(':') && !isSpecial('>')) ++pos_;
      if (!isSpecial(':')) return false;
      ++pos_;
    }
    size_t start = pos_;
    while (isWord() || isSpecial('.')) ++pos_;
    if (!isSpecial('@') || !localPart(start, pos_)) return false;
    ++pos_;
    if (!domain(domains) || !isSpecial('>')) return false;
    ++pos_;
    return true;
  }

  // dot-atom or domain-literal. A literal names no DNS domain: nothing added.
  bool domain(std::vector<std::string>* domains) {
    if (pos_ < t_.size() && t_[pos_].kind == Token::kLiteral) {
      ++pos_;
      return true;
    }
    std::string d;
    bool want_atom = true;
    while (pos_ < t_.size() && (want_atom ? t_[pos_].kind == Token::kAtom : isSpecial('.'))) {
      d += t_[pos_].text;
      want_atom = !want_atom;
      ++pos_;
    }
    if (want_atom) return false;  // empty, or ends with a dot
    domains->push_back(std::move(d));
    return true;
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
};

bool isDomainChar(unsigned char c) {
  return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_';
}

// The domain after each '@' outside quoted strings and comments.
std::vector<std::string> lenientScan(std::string_view v) {
  std::vector<std::string> out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\\') {
      ++i;
    } else if (quoted) {
      quoted = c != '"';
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    } else if (depth == 0 && c == '"') {
      quoted = true;
    } else if (depth == 0 && c == '@') {
      size_t end = i + 1;
      while (end < v.size() && isDomainChar(v[end])) ++end;
      if (end > i + 1) out.emplace_back(v.substr(i + 1, end - i - 1));
      i = end - 1;
    }
  }
  return out;
}

bool validLabel(std::string_view l) {
  if (l.empty() || l.size() > 63) return false;
  for (char c : l)
    if (!isDomainChar(c) || c == '.' || static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace

std::optional<std::string> normalizeDomain(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty()) return std::nullopt;
  std::string d = toLower(domain);
  if (std::any_of(d.begin(), d.end(),
                  [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    char* ascii = nullptr;
    if (idn2_to_ascii_8z(d.c_str(), &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK)
      return std::nullopt;
    d = toLower(ascii);
    idn2_free(ascii);
  }
  if (d.size() > 253) return std::nullopt;
  size_t start = 0;
  while (true) {
    size_t dot = d.find('.', start);
    std::string_view label =
        std::string_view(d).substr(start, dot == d.npos ? d.npos : dot - start);
    if (!validLabel(label)) return std::nullopt;
    if (dot == d.npos) break;
    start = dot + 1;
  }
  return d;
}

std::vector<std::string> parseFromValue(std::string_view value, bool* lenient) {
  std::vector<Token> tokens;
  std::vector<std::string> raw;
  bool strict = tokenize(value, &tokens) && MailboxListParser(tokens).parse(&raw);
  if (!strict) raw = lenientScan(value);
  if (lenient) *lenient = !strict;
  std::vector<std::string> out;
  for (const std::string& r : raw) {
    auto d = normalizeDomain(r);
    if (d && std::find(out.begin(), out.end(), *d) == out.end()) out.push_back(std::move(*d));
  }
  return out;
}

FromDomains fromDomains(std::string_view message) {
  FromDomains out;
  smtp::scanHeaders(message, [&](const smtp::HeaderField& f) {
    if (f.name.size() != 4 || strncasecmp(f.name.data(), "From", 4) != 0) return true;
    ++out.fields;
    bool lenient = false;
    for (std::string& d : parseFromValue(f.value, &lenient))
      if (std::find(out.domains.begin(), out.domains.end(), d) == out.domains.end())
        out.domains.push_back(std::move(d));
    out.lenient |= lenient;
    return true;
  });
  return out;
}

}  // namespace mxgate::dmarc
