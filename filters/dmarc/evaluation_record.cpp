#include "filters/dmarc/evaluation_record.h"

#include <charconv>

#include <fmt/format.h>

namespace mxgate::dmarc {
namespace {

// Percent-encodes what would break the line and field structure: '%',
// spaces, control characters and DEL. Everything else is kept as is.
void appendEncoded(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '%' || c == 0x7f)
      out += fmt::format("%{:02X}", c);
    else
      out += static_cast<char>(c);
  }
}

std::optional<std::string> decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

// Space-separated encoded components.
std::optional<std::vector<std::string>> decodeList(std::string_view s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t sp = s.find(' ', start);
    auto part = decode(s.substr(start, sp == s.npos ? s.npos : sp - start));
    if (!part) return std::nullopt;
    out.push_back(std::move(*part));
    if (sp == s.npos) return out;
    start = sp + 1;
  }
}

class Writer {
 public:
  void field(std::string_view name, std::string_view value) {
    out_ += name;
    out_ += '=';
    appendEncoded(out_, value);
    out_ += '\n';
  }
  void list(std::string_view name, const std::vector<std::string>& values) {
    out_ += name;
    out_ += '=';
    for (size_t i = 0; i < values.size(); ++i) {
      if (i) out_ += ' ';
      appendEncoded(out_, values[i]);
    }
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::optional<int64_t> toInt(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<bool> toPassFail(std::string_view s) {
  if (s == "pass") return true;
  if (s == "fail") return false;
  return std::nullopt;
}

}  // namespace

std::string encodeEvaluationRecord(const EvaluationRecord& r) {
  Writer w;
  w.field("v", "1");
  w.field("time", std::to_string(r.time_ms));
  w.field("header_from", r.header_from);
  w.field("policy_domain", r.policy_domain);
  w.field("source_ip", r.source_ip);
  w.field("helo", r.helo);
  w.field("mail_from", r.mail_from);
  w.list("rcpt_domains", r.rcpt_domains);
  w.list("spf", {r.spf.result, r.spf.domain, r.spf.scope});
  for (const auto& d : r.dkim) w.list("dkim", {d.result, d.domain, d.selector});
  w.field("result", r.result);
  w.field("spf_aligned", r.spf_aligned ? "pass" : "fail");
  w.field("dkim_aligned", r.dkim_aligned ? "pass" : "fail");
  w.field("policy", r.policy);
  w.field("disposition", r.disposition);
  w.field("override", r.override_reason);
  w.field("reason", r.reason);
  if (r.published) {
    const auto& p = *r.published;
    w.field("p", p.p);
    w.field("sp", p.sp);
    w.field("pct", std::to_string(p.pct));
    w.field("adkim", p.adkim);
    w.field("aspf", p.aspf);
    w.field("fo", p.fo);
    w.list("rua", p.rua);
  }
  return w.take();
}

std::optional<EvaluationRecord> decodeEvaluationRecord(std::string_view value) {
  EvaluationRecord r;
  bool first = true, have_time = false;
  auto pub = [&]() -> EvaluationRecord::Published& {
    if (!r.published) r.published.emplace();
    return *r.published;
  };
  while (!value.empty()) {
    size_t nl = value.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;  // every line ends with \n
    std::string_view line = value.substr(0, nl);
    value.remove_prefix(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = line.substr(0, eq), raw = line.substr(eq + 1);
    if (first) {
      if (name != "v" || raw != "1") return std::nullopt;
      first = false;
      continue;
    }
    if (name == "spf" || name == "dkim" || name == "rcpt_domains" || name == "rua") {
      auto parts = decodeList(raw);
      if (!parts) return std::nullopt;
      if (name == "rcpt_domains") {
        r.rcpt_domains = std::move(*parts);
      } else if (name == "rua") {
        pub().rua = std::move(*parts);
      } else {
        if (parts->size() != 3) return std::nullopt;
        auto& v = *parts;
        if (name == "spf")
          r.spf = {v[0], v[1], v[2]};
        else
          r.dkim.push_back({v[0], v[1], v[2]});
      }
      continue;
    }
    auto text = decode(raw);
    if (!text) return std::nullopt;
    std::string& s = *text;
    if (name == "time") {
      auto t = toInt(s);
      if (!t) return std::nullopt;
      r.time_ms = *t;
      have_time = true;
    } else if (name == "header_from")
      r.header_from = s;
    else if (name == "policy_domain")
      r.policy_domain = s;
    else if (name == "source_ip")
      r.source_ip = s;
    else if (name == "helo")
      r.helo = s;
    else if (name == "mail_from")
      r.mail_from = s;
    else if (name == "result")
      r.result = s;
    else if (name == "spf_aligned" || name == "dkim_aligned") {
      auto b = toPassFail(s);
      if (!b) return std::nullopt;
      (name == "spf_aligned" ? r.spf_aligned : r.dkim_aligned) = *b;
    } else if (name == "policy")
      r.policy = s;
    else if (name == "disposition")
      r.disposition = s;
    else if (name == "override")
      r.override_reason = s;
    else if (name == "reason")
      r.reason = s;
    else if (name == "p")
      pub().p = s;
    else if (name == "sp")
      pub().sp = s;
    else if (name == "pct") {
      auto n = toInt(s);
      if (!n || *n < 0 || *n > 100) return std::nullopt;
      pub().pct = static_cast<int>(*n);
    } else if (name == "adkim")
      pub().adkim = s;
    else if (name == "aspf")
      pub().aspf = s;
    else if (name == "fo")
      pub().fo = s;
    // Unknown names: fields of a later minor revision; skipped.
  }
  if (first || !have_time) return std::nullopt;
  return r;
}

std::string evaluationRecordKey(int64_t time_ms, uint64_t unique) {
  return fmt::format("{:013d}-{:016x}", time_ms, unique);
}

}  // namespace mxgate::dmarc
