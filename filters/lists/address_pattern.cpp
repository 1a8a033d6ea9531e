#include "filters/lists/address_pattern.h"

#include <algorithm>

#include "gateway/util/strings.h"

namespace mxgate {
namespace {

bool validDomain(std::string_view d) {
  return !d.empty() && d.front() != '.' && d.back() != '.' &&
         d.find("..") == std::string_view::npos;
}

std::string_view validate(std::string_view p) {
  if (p.empty()) return "empty pattern";
  for (unsigned char c : p) {
    if (c <= ' ' || c == 0x7f) return "pattern contains a space or control character";
    if (c == '<' || c == '>') return "write the bare address, without angle brackets";
  }
  if (std::count(p.begin(), p.end(), '@') > 1) return "pattern has more than one @";
  if (p.find("**") != std::string_view::npos) return "pattern contains **";
  auto at = p.find('@');
  std::string_view domain = at == std::string_view::npos ? p : p.substr(at + 1);
  if (at == 0) return "pattern has an empty local part";
  if (domain.empty()) return "pattern has an empty domain";
  if (!validDomain(domain)) return "pattern has an empty label in its domain";
  return {};
}

}  // namespace

bool globMatch(std::string_view pattern, std::string_view text) {
  // Classic single-star backtracking: on a mismatch only the last '*' is
  // retried one character further, so nothing is ever explored twice.
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void SenderPatternSet::addDomain(std::string_view domain, std::string_view entry) {
  std::string_view rest = domain.substr(std::min<size_t>(2, domain.size()));
  if (domain.find('*') == std::string_view::npos) {
    domains_.try_emplace(std::string(domain), entry);
  } else if (domain.substr(0, 2) == "*." && rest.find('*') == std::string_view::npos) {
    suffixes_.try_emplace(std::string(rest), entry);
  } else {
    globs_.push_back({std::string(domain), false, std::string(entry)});
  }
}

bool SenderPatternSet::add(std::string_view pattern, std::string* error) {
  if (std::string_view why = validate(pattern); !why.empty()) {
    *error = std::string(why) + ": \"" + std::string(pattern) + "\"";
    return false;
  }
  std::string p = toLower(pattern);
  auto at = p.find('@');
  std::string_view local = at == std::string::npos ? "*" : std::string_view(p).substr(0, at);
  std::string_view domain = at == std::string::npos ? p : std::string_view(p).substr(at + 1);
  if (local == "*") {
    addDomain(domain, pattern);
  } else if (p.find('*') == std::string::npos) {
    addresses_.try_emplace(p, pattern);
  } else {
    globs_.push_back({p, true, std::string(pattern)});
  }
  ++size_;
  return true;
}

const std::string* SenderPatternSet::match(std::string_view sender) const {
  if (sender.empty() || size_ == 0) return nullptr;
  std::string s = toLower(sender);
  if (auto it = addresses_.find(s); it != addresses_.end()) return &it->second;
  auto at = s.rfind('@');
  std::string_view domain = at == std::string::npos ? "" : std::string_view(s).substr(at + 1);
  if (!domain.empty()) {
    if (auto it = domains_.find(domain); it != domains_.end()) return &it->second;
    if (!suffixes_.empty()) {
      // "a.b.example.com" probes "b.example.com", "example.com", "com".
      for (auto dot = domain.find('.'); dot != std::string_view::npos;
           dot = domain.find('.', dot + 1)) {
        if (auto it = suffixes_.find(domain.substr(dot + 1)); it != suffixes_.end())
          return &it->second;
      }
    }
  }
  for (const Glob& g : globs_) {
    if (!g.whole_address && domain.empty()) continue;
    if (globMatch(g.pattern, g.whole_address ? std::string_view(s) : domain)) return &g.entry;
  }
  return nullptr;
}

}  // namespace mxgate
