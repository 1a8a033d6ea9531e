#include "gateway/smtp/message_edit.h"

#include <strings.h>

#include <algorithm>
#include <ctime>

#include <fmt/format.h>

#include "gateway/smtp/header_scan.h"

namespace mxgate::smtp {

std::string protocolName(const SessionInfo& s) {
  if (!s.esmtp) return "SMTP";
  std::string p = "ESMTP";
  if (s.tls) p += 'S';
  if (!s.auth_user.empty()) p += 'A';
  return p;
}

std::string rfc5322Date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string foldHeader(std::string_view name, std::string_view value) {
  std::string out(name);
  out += ':';
  size_t line_len = out.size();
  bool line_has_word = false;  // fold only where the line already holds a word
  size_t pos = 0;
  while (pos < value.size()) {
    size_t sp = value.find(' ', pos);
    std::string_view word = value.substr(pos, sp == std::string_view::npos ? value.npos : sp - pos);
    pos = sp == std::string_view::npos ? value.size() : sp + 1;
    if (word.empty()) continue;
    if (line_len + 1 + word.size() > 78 && line_has_word) {
      out += "\r\n\t";
      line_len = 1;
    } else {
      out += ' ';
      ++line_len;
    }
    out += word;
    line_len += word.size();
    line_has_word = true;
  }
  out += "\r\n";
  return out;
}

std::vector<std::string_view> MessageEdit::parts() const {
  std::vector<std::string_view> p{prepend_};
  for (const Piece& piece : pieces_)
    p.push_back(piece.len == std::string_view::npos ? std::string_view(tag_)
                                                    : message_.substr(piece.off, piece.len));
  return p;
}

std::string authenticationResults(std::string_view authserv_id, const AuthFacts& a) {
  if (a.empty()) return {};
  std::string v(authserv_id);
  auto comment = [](const std::string& reason) {
    return reason.empty() ? std::string() : " (" + reason + ")";
  };
  if (!a.spf.result.empty()) {
    v += fmt::format("; spf={}{}", a.spf.result, comment(a.spf.reason));
    if (a.spf.identity == "helo")
      v += " smtp.helo=" + a.spf.domain;
    else
      v += " smtp.mailfrom=" + a.spf.mailfrom;
  }
  if (a.dkim_checked && a.dkim.empty()) v += "; dkim=none";
  for (const DkimOutcome& d : a.dkim) {
    v += fmt::format("; dkim={}{} header.d={}", d.result, comment(d.reason), d.domain);
    if (!d.selector.empty()) v += " header.s=" + d.selector;
    if (!d.algorithm.empty()) v += " header.a=" + d.algorithm;
    if (!d.header_b.empty()) v += " header.b=" + d.header_b;
  }
  if (!a.dmarc.result.empty()) {
    std::string why = a.dmarc.policy.empty()
                          ? a.dmarc.reason
                          : fmt::format("p={} dis={}", a.dmarc.policy, a.dmarc.disposition);
    v += fmt::format("; dmarc={}{} header.from={}", a.dmarc.result, comment(why),
                     a.dmarc.header_from);
  }
  return v;
}

bool claimsAuthservId(std::string_view value, std::string_view id) {
  size_t i = 0;
  // Leading CFWS: spaces, tabs, line folds and (possibly nested) comments.
  for (int depth = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '(')
      ++depth;
    else if (c == ')' && depth > 0)
      --depth;
    else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n')
      break;
  }
  size_t end = i;
  while (end < value.size() && value[end] != ';' && value[end] != ' ' && value[end] != '\t' &&
         value[end] != '\r' && value[end] != '(')
    ++end;
  std::string_view token = value.substr(i, end - i);
  if (token.size() >= 2 && token.front() == '"' && token.back() == '"')
    token = token.substr(1, token.size() - 2);
  return token.size() == id.size() && strncasecmp(token.data(), id.data(), id.size()) == 0;
}

namespace {

// The HELO argument is client text that reaches here unchecked; a bare CR
// (or other control character) in it must not split the Received field and
// inject a header of the client's choosing.
std::string headerSafe(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

}  // namespace

MessageEdit buildMessageEdit(const MessageEditInput& in, std::string_view message) {
  const Config& cfg = in.config;
  MessageEdit e;
  // Received (RFC 5321 4.4), first so it is the topmost trace field.
  std::string from =
      fmt::format("from {} ({} [{}])", headerSafe(in.session.helo),
                  headerSafe(in.session.client_name), in.session.client_ip.to_string());
  e.prepend_ = "Received: " + from + "\r\n\tby " + cfg.hostname + " (mxgate) with " +
               protocolName(in.session) + " id " + in.queue_id;
  if (in.envelope.rcpts.size() == 1)
    e.prepend_ += "\r\n\tfor <" + in.envelope.rcpts[0].address + ">";
  e.prepend_ += "; " + rfc5322Date(std::chrono::system_clock::now()) + "\r\n";
  for (const auto& [name, value] : in.result.addedHeaders()) e.prepend_ += foldHeader(name, value);
  std::string ar = authenticationResults(cfg.authserv_id, in.result.auth());
  if (!ar.empty()) e.prepend_ += foldHeader("Authentication-Results", ar);
  if (!cfg.policy.status_header.empty()) {
    e.prepend_ += foldHeader(
        cfg.policy.status_header,
        fmt::format("{}; action={}; score={:.2f}; symbols={}", cfg.hostname, actionName(in.action),
                    in.result.score(), in.trace.empty() ? "none" : in.trace));
  }
  if (in.action >= Action::kAddHeader) {
    e.prepend_ += "X-Spam-Flag: YES\r\n";
    e.prepend_ += fmt::format("X-Spam-Score: {:.2f}\r\n", in.result.score());
  }

  // Cuts: header fields left out, as [offset, end) in the message.
  std::vector<std::pair<size_t, size_t>> cuts;
  for (auto [off, len] : in.result.removedRanges())
    if (off < message.size()) cuts.emplace_back(off, std::min(message.size(), off + len));
  size_t subject_at = std::string_view::npos;
  scanHeaders(message, [&](const HeaderField& f) {
    if (f.name.size() == 22 && strncasecmp(f.name.data(), "Authentication-Results", 22) == 0 &&
        claimsAuthservId(f.value, cfg.authserv_id))
      cuts.emplace_back(f.offset, f.end);
    if (subject_at == std::string_view::npos && f.name.size() == 7 &&
        strncasecmp(f.name.data(), "Subject", 7) == 0) {
      subject_at = f.value_offset;
      if (subject_at < message.size() && message[subject_at] == ' ') ++subject_at;
    }
    return true;
  });
  std::sort(cuts.begin(), cuts.end());

  bool tag = in.action == Action::kTagSubject && !cfg.policy.subject_tag.empty() &&
             !in.result.contentFrozen();
  if (tag && subject_at == std::string_view::npos) {
    e.prepend_ += "Subject: " + cfg.policy.subject_tag + "\r\n";
    tag = false;
  }
  if (tag) e.tag_ = cfg.policy.subject_tag + " ";
  e.message_ = message;
  size_t pos = 0;
  auto keep = [&](size_t end) {  // emits [pos, end), with the tag where it belongs
    if (tag && subject_at >= pos && subject_at <= end) {
      if (subject_at > pos) e.pieces_.push_back({pos, subject_at - pos});
      e.pieces_.push_back({0, std::string_view::npos});
      pos = subject_at;
      tag = false;
    }
    if (end > pos) e.pieces_.push_back({pos, end - pos});
    pos = std::max(pos, end);
  };
  for (auto [from, to] : cuts) {
    if (from < pos) from = pos;  // overlapping cuts
    if (to <= from) continue;
    keep(from);
    pos = to;
  }
  keep(message.size());
  return e;
}

}  // namespace mxgate::smtp
