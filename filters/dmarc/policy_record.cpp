#include "filters/dmarc/policy_record.h"

#include <charconv>
#include <set>

#include "gateway/util/strings.h"

namespace mxgate::dmarc {
namespace {

bool isWsp(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && isWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && isWsp(s.back())) s.remove_suffix(1);
  return s;
}

bool isAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

// tag-name = ALPHA *ALNUMPUNC (RFC 6376 3.2, which RFC 7489 6.4 uses).
bool validTagName(std::string_view s) {
  if (s.empty() || !isAlpha(s[0])) return false;
  for (char c : s)
    if (!isAlpha(c) && !isDigit(c) && c != '_') return false;
  return true;
}

// Splits on sep, trimming each piece.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.push_back(trim(s.substr(start, at == std::string_view::npos ? s.npos : at - start)));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::optional<Policy> parsePolicy(std::string_view v) {
  if (iequals(v, "none")) return Policy::kNone;
  if (iequals(v, "quarantine")) return Policy::kQuarantine;
  if (iequals(v, "reject")) return Policy::kReject;
  return std::nullopt;
}

std::optional<Alignment> parseAlignment(std::string_view v) {
  if (iequals(v, "r")) return Alignment::kRelaxed;
  if (iequals(v, "s")) return Alignment::kStrict;
  return std::nullopt;
}

std::optional<uint64_t> parseNumber(std::string_view v, uint64_t max) {
  if (v.empty() || v.size() > 10) return std::nullopt;
  for (char c : v)
    if (!isDigit(c)) return std::nullopt;
  uint64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  if (n > max) return std::nullopt;
  return n;
}

// Keyword = Ldh-str (RFC 5321 4.1.2): letters, digits and inner hyphens.
bool validKeyword(std::string_view s) {
  if (s.empty() || s.back() == '-') return false;
  for (char c : s)
    if (!isAlpha(c) && !isDigit(c) && c != '-') return false;
  return true;
}

// dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]. A URI needs at
// least a scheme (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )) and a colon.
bool validDmarcUri(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon + 1 == s.size()) return false;
  if (!isAlpha(s[0])) return false;
  for (char c : s.substr(0, colon))
    if (!isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.') return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  return true;
}

std::vector<std::string> parseUris(std::string_view v) {
  std::vector<std::string> out;
  for (std::string_view u : split(v, ','))
    if (validDmarcUri(u)) out.emplace_back(u);
  return out;
}

bool validFo(std::string_view v) {
  for (std::string_view o : split(v, ':'))
    if (o != "0" && o != "1" && o != "d" && o != "s") return false;
  return true;
}

}  // namespace

const char* policyName(Policy p) {
  switch (p) {
    case Policy::kNone:
      return "none";
    case Policy::kQuarantine:
      return "quarantine";
    case Policy::kReject:
      return "reject";
  }
  return "none";
}

const char* alignmentName(Alignment a) {
  return a == Alignment::kStrict ? "s" : "r";
}

bool isDmarcRecord(std::string_view text) {
  std::string_view first = text.substr(0, text.find(';'));
  size_t eq = first.find('=');
  if (eq == std::string_view::npos) return false;
  return trim(first.substr(0, eq)) == "v" && trim(first.substr(eq + 1)) == "DMARC1";
}

ParsedRecord parsePolicyRecord(std::string_view text) {
  ParsedRecord out;
  if (!isDmarcRecord(text)) return out;
  auto invalid = [&](std::string error) {
    out.status = ParsedRecord::Status::kInvalid;
    out.error = std::move(error);
    return out;
  };
  PolicyRecord& r = out.record;
  bool have_p = false;
  std::string bad_policy;  // "p" or "sp" if one was missing or invalid
  std::set<std::string, std::less<>> seen;
  std::vector<std::string_view> parts = split(text, ';');
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (part.empty()) continue;  // trailing or doubled ';'
    size_t eq = part.find('=');
    if (eq == std::string_view::npos)
      return invalid("tag without value: \"" + std::string(part) + "\"");
    std::string tag = toLower(trim(part.substr(0, eq)));
    std::string_view value = trim(part.substr(eq + 1));
    if (!validTagName(tag)) return invalid("bad tag name \"" + tag + "\"");
    if (!seen.insert(tag).second) return invalid("tag " + tag + " given twice");
    auto bad = [&] { return invalid("bad value for " + tag + ": \"" + std::string(value) + "\""); };
    if (tag == "p") {
      auto p = parsePolicy(value);
      if (p)
        r.p = *p;
      else
        bad_policy = "p";
      have_p = p.has_value();
    } else if (tag == "sp") {
      auto p = parsePolicy(value);
      if (p)
        r.sp = *p;
      else
        bad_policy = "sp";
    } else if (tag == "adkim" || tag == "aspf") {
      auto a = parseAlignment(value);
      if (!a) return bad();
      (tag == "adkim" ? r.adkim : r.aspf) = *a;
    } else if (tag == "pct") {
      auto n = parseNumber(value, 100);
      if (!n) return bad();
      r.pct = static_cast<int>(*n);
    } else if (tag == "ri") {
      auto n = parseNumber(value, UINT32_MAX);
      if (!n) return bad();
      r.ri = static_cast<uint32_t>(*n);
    } else if (tag == "fo") {
      std::string fo = toLower(value);
      if (!validFo(fo)) return bad();
      r.fo = fo;
    } else if (tag == "rf") {
      r.rf.clear();
      for (std::string_view k : split(value, ':')) {
        if (!validKeyword(k)) return bad();
        r.rf.push_back(toLower(k));
      }
    } else if (tag == "rua") {
      r.rua = parseUris(value);
    } else if (tag == "ruf") {
      r.ruf = parseUris(value);
    } else if (tag == "v") {
      return invalid("tag v given twice");
    }
    // Unknown tags are ignored (RFC 7489 6.3).
  }
  if (!have_p && bad_policy.empty()) bad_policy = "p";
  if (!bad_policy.empty()) {
    if (r.rua.empty())
      return invalid(bad_policy == "p" && !seen.count("p") ? "no p tag"
                                                           : "bad " + bad_policy + " tag");
    r.p = Policy::kNone;
    r.sp.reset();
    r.p_defaulted = true;
  }
  out.status = ParsedRecord::Status::kOk;
  return out;
}

}  // namespace mxgate::dmarc
